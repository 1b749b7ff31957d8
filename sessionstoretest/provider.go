package sessionstoretest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
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

// A Provider is a real OAuth 2 authorization server and API on loopback
// (net/http/httptest). It speaks the token endpoint protocol of
// golang.org/x/oauth2, plus Podio's password and app grants, and rotates
// refresh tokens as strict providers do: a refresh token works once, and
// reusing it gets invalid_grant. Its methods are safe for concurrent use.
type Provider struct {
	*httptest.Server
	lifetime time.Duration

	mu           sync.Mutex // guards everything below
	omitRefresh  bool
	failStatus   int    // SetTokenError's status; 0: working
	failCode     string // SetTokenError's error code
	echo         bool
	refreshDelay time.Duration
	n            int
	access       map[string]time.Time        // access token → expiry
	refresh      map[string]sessionstore.Ref // usable refresh token → its subject
	stats        Stats
}

// NewProvider starts a provider on 127.0.0.1 whose access tokens live for
// lifetime. Close it when done.
func NewProvider(lifetime time.Duration) *Provider {
	s := &Provider{lifetime: lifetime, access: map[string]time.Time{}, refresh: map[string]sessionstore.Ref{}}
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
	if fail {
		s.SetTokenError(http.StatusServiceUnavailable, "temporarily_unavailable")
	} else {
		s.SetTokenError(0, "")
	}
}

// SetTokenError makes the token endpoint answer every request with HTTP
// status and the OAuth error code (such as 500 "server_error", 401
// "invalid_client" or 400 "invalid_grant"); status 0 makes it work again.
func (s *Provider) SetTokenError(status int, code string) {
	s.mu.Lock()
	s.failStatus, s.failCode = status, code
	s.mu.Unlock()
}

// RevokeRefreshTokens makes every refresh token issued so far unusable, as
// when the user revokes the integration's access or the provider ends an
// idle session: refreshing with one then gets invalid_grant. Logins still
// work, and issue refresh tokens that do.
func (s *Provider) RevokeRefreshTokens() {
	s.mu.Lock()
	clear(s.refresh)
	s.mu.Unlock()
}

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
	defer s.mu.Unlock()
	describe := func(e string) string {
		if !s.echo {
			return ""
		}
		return e + ": refresh token " + r.PostForm.Get("refresh_token") + " was rejected"
	}
	if s.failStatus != 0 {
		s.stats.Failures++
		oauthError(w, s.failStatus, s.failCode, describe(s.failCode))
		return
	}
	var subject sessionstore.Ref
	switch f := r.PostForm; f.Get("grant_type") {
	case "refresh_token":
		if d := s.refreshDelay; d > 0 {
			s.mu.Unlock() // other requests go on meanwhile
			time.Sleep(d)
			s.mu.Lock()
		}
		rt := f.Get("refresh_token")
		var ok bool
		if subject, ok = s.refresh[rt]; !ok {
			s.stats.InvalidGrants++
			oauthError(w, http.StatusBadRequest, "invalid_grant", describe("invalid_grant"))
			return
		}
		s.stats.Refreshes++
		if !s.omitRefresh {
			delete(s.refresh, rt) // a refresh token works once
		}
		s.issue(w, subject, !s.omitRefresh)
		return
	case "password":
		if f.Get("username") == Username && f.Get("password") == Password {
			subject = sessionstore.Ref{Type: "user", ID: 1}
		}
	case "app": // Podio's app authentication
		if f.Get("app_id") == AppID && f.Get("app_token") == AppToken {
			subject = sessionstore.Ref{Type: "app", ID: 12345} // AppID
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if subject == (sessionstore.Ref{}) {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	s.stats.Logins++
	s.issue(w, subject, true)
}

// issue writes a token response, with a new refresh token if withRT;
// s.mu is held.
func (s *Provider) issue(w http.ResponseWriter, subject sessionstore.Ref, withRT bool) {
	s.n++
	at := fmt.Sprintf("access-%d", s.n)
	s.access[at] = time.Now().Add(s.lifetime)
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   max(int(s.lifetime/time.Second), 1),
		"scope":        "global:all",
		"ref":          subject,
	}
	if withRT {
		rt := fmt.Sprintf("refresh-%d", s.n)
		s.refresh[rt] = subject
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
