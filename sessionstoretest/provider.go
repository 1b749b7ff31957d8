package sessionstoretest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Test credentials the Provider accepts. They are for tests only.
const (
	ClientID     = "test-client"
	ClientSecret = "test-secret"
	Username     = "user@example.com"
	Password     = "test-password"
	AppID        = "12345"
	AppToken     = "test-app-token"
)

// Credentials and the provider: a real OAuth 2 authorization server and API
// on loopback (net/http/httptest), for the tests of programs that use
// sessionstore and for its examples. It speaks the token endpoint protocol
// that golang.org/x/oauth2 uses, plus Podio's password and app grants, and it
// rotates refresh tokens the way strict providers do: a refresh token works
// once, and reusing it gets invalid_grant.

// Stats counts what the provider saw.
type Stats struct {
	TokenRequests int // requests to the token endpoint, whatever their answer
	Refreshes     int // successful refresh_token grants
	InvalidGrants int // refresh tokens refused (reused, unknown)
	Logins        int // successful password and app grants
	APICalls      int // API requests with a valid access token
	APIRefused    int // API requests with a missing, unknown or expired token
	Failures      int // token requests answered with an injected failure (SetFailing, SetTokenError)
}

// A Provider is a local OAuth 2 provider and API. Its methods are safe for
// concurrent use.
type Provider struct {
	*httptest.Server

	mu             sync.Mutex // guards everything below
	lifetime       time.Duration
	omitRefresh    bool
	fail           bool
	failStatus     int    // SetTokenError's status; 0: 503
	failCode       string // SetTokenError's error code
	echo           bool
	refreshDelay   time.Duration
	n              int
	access         map[string]time.Time // access token → expiry
	refresh        map[string]bool      // refresh token → still usable
	refreshSubject map[string]string    // refresh token → ref type:id
	stats          Stats
}

// NewProvider starts a provider on 127.0.0.1 whose access tokens live for
// lifetime. Close it when done.
func NewProvider(lifetime time.Duration) *Provider {
	s := &Provider{
		lifetime:       lifetime,
		access:         make(map[string]time.Time),
		refresh:        make(map[string]bool),
		refreshSubject: make(map[string]string),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("GET /api/me", s.api)
	s.Server = httptest.NewServer(mux)
	return s
}

// Config returns an oauth2.Config for the provider's token endpoint with
// the test client's credentials.
func (s *Provider) Config() *oauth2.Config { return ConfigFor(s.URL) }

// ConfigFor is Provider.Config for the provider at url, for a process that
// knows only the address (a child process of a test or demo).
func ConfigFor(url string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: url + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// TokenURL is the token endpoint.
func (s *Provider) TokenURL() string { return s.URL + "/oauth/token" }

// APIURL is an API endpoint that needs a valid access token.
func (s *Provider) APIURL() string { return s.URL + "/api/me" }

// Stats returns the counters so far.
func (s *Provider) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// SetFailing makes the token endpoint answer 503 (true) or work (false).
func (s *Provider) SetFailing(fail bool) {
	s.mu.Lock()
	s.fail, s.failStatus, s.failCode = fail, 0, ""
	s.mu.Unlock()
}

// SetTokenError makes the token endpoint answer every request with HTTP
// status and the OAuth error code (such as 500 "server_error", 401
// "invalid_client" or 400 "invalid_grant"); status 0 makes it work again.
func (s *Provider) SetTokenError(status int, code string) {
	s.mu.Lock()
	s.fail, s.failStatus, s.failCode = status != 0, status, code
	s.mu.Unlock()
}

// RevokeRefreshTokens makes every refresh token issued so far unusable, as
// when the user revokes the integration's access or the provider ends an
// idle session: refreshing with one then gets invalid_grant. Logins still
// work, and issue refresh tokens that do.
func (s *Provider) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rt := range s.refresh {
		s.refresh[rt] = false
	}
}

// SetLifetime makes the access tokens issued from now on live for d.
func (s *Provider) SetLifetime(d time.Duration) { s.mu.Lock(); s.lifetime = d; s.mu.Unlock() }

// SetEchoTokens makes error responses repeat the refresh token they were
// sent in their error_description, as careless providers do: a test that
// the token never reaches an error message or a log.
func (s *Provider) SetEchoTokens(echo bool) { s.mu.Lock(); s.echo = echo; s.mu.Unlock() }

// SetOmitRefreshToken makes refresh responses carry no refresh_token; the
// old one then stays valid, as with providers that do not rotate.
func (s *Provider) SetOmitRefreshToken(omit bool) { s.mu.Lock(); s.omitRefresh = omit; s.mu.Unlock() }

// SetRefreshDelay makes each refresh take d, widening race windows.
func (s *Provider) SetRefreshDelay(d time.Duration) { s.mu.Lock(); s.refreshDelay = d; s.mu.Unlock() }

// ExpireAll makes every access token issued so far expired.
func (s *Provider) ExpireAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.access {
		s.access[t] = time.Time{}
	}
}

func (s *Provider) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.TokenRequests++
	s.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != ClientID || secret != ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	s.mu.Lock()
	fail, failStatus, failCode, delay, echo := s.fail, s.failStatus, s.failCode, s.refreshDelay, s.echo
	if fail {
		s.stats.Failures++
	}
	s.mu.Unlock()
	describe := func(e string) string {
		if echo {
			return e + ": refresh token " + r.PostForm.Get("refresh_token") + " was rejected"
		}
		return ""
	}
	if fail {
		if failStatus == 0 {
			failStatus, failCode = http.StatusServiceUnavailable, "temporarily_unavailable"
		}
		oauthError(w, failStatus, failCode, describe(failCode))
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		time.Sleep(delay)
		s.mu.Lock()
		defer s.mu.Unlock()
		rt := r.PostForm.Get("refresh_token")
		if !s.refresh[rt] {
			s.stats.InvalidGrants++
			oauthError(w, http.StatusBadRequest, "invalid_grant", describe("invalid_grant"))
			return
		}
		subject := s.refreshSubject[rt]
		s.stats.Refreshes++
		if s.omitRefresh {
			s.issue(w, subject, false) // rt stays valid
			return
		}
		s.refresh[rt] = false // a refresh token works once
		s.issue(w, subject, true)
	case "password":
		if r.PostForm.Get("username") != Username || r.PostForm.Get("password") != Password {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stats.Logins++
		s.issue(w, "user:1", true)
	case "app": // Podio's app authentication
		if r.PostForm.Get("app_id") != AppID || r.PostForm.Get("app_token") != AppToken {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stats.Logins++
		s.issue(w, "app:"+AppID, true)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// issue writes a token response, with a new refresh token if withRT;
// s.mu is held.
func (s *Provider) issue(w http.ResponseWriter, subject string, withRT bool) {
	s.n++
	at := fmt.Sprintf("access-%d", s.n)
	s.access[at] = time.Now().Add(s.lifetime)
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   max(int(s.lifetime/time.Second), 1),
		"scope":        "global:all",
	}
	typ, idStr, _ := strings.Cut(subject, ":")
	id, _ := strconv.ParseInt(idStr, 10, 64)
	resp["ref"] = map[string]any{"type": typ, "id": id}
	if withRT {
		rt := fmt.Sprintf("refresh-%d", s.n)
		s.refresh[rt] = true
		s.refreshSubject[rt] = subject
		resp["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

func oauthError(w http.ResponseWriter, code int, e string, description ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]string{"error": e}
	if len(description) > 0 && description[0] != "" {
		body["error_description"] = description[0]
	}
	json.NewEncoder(w).Encode(body)
}

func (s *Provider) api(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.access[at]
	valid := ok && known && time.Now().Before(exp)
	if valid {
		s.stats.APICalls++
	} else {
		s.stats.APIRefused++
	}
	s.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid or expired access token", http.StatusUnauthorized)
		return
	}
	fmt.Fprintln(w, `{"ok":true}`)
}

// CallAPI makes one GET request with client (an oauth2 client) and fails
// unless the API answers 200 OK.
func CallAPI(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API answered %s", resp.Status)
	}
	return nil
}
