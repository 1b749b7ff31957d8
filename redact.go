package sessionstore

import (
	"errors"
	"strings"

	"golang.org/x/oauth2"
)

// redactErr returns err with every occurrence of the given secrets replaced
// by "[redacted]" in its message, and in the description, URI and body of
// any *oauth2.RetrieveError it wraps (a provider may echo the refresh
// token it was sent). errors.Is and errors.As still see every error in the
// chain.
func redactErr(err error, secrets ...string) error {
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 { // shorter strings are not tokens, and would match anywhere
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return err
	}
	scrub := func(s string) string {
		for _, k := range keep {
			s = strings.ReplaceAll(s, k, redacted)
		}
		return s
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		re.ErrorDescription = scrub(re.ErrorDescription)
		re.ErrorURI = scrub(re.ErrorURI)
		re.Body = []byte(scrub(string(re.Body)))
	}
	return &redactedError{msg: scrub(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
