package main

// The demo's OAuth provider: a real OAuth 2 token endpoint and API on
// loopback (net/http/httptest) that rotates refresh tokens the way strict
// providers do: a refresh token works once, and reusing it gets
// invalid_grant. It is the part of sessionstoretest.Provider that the demo
// needs, kept here so that the demo links no testing package.

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
)

// The demo's credentials.
const (
	clientID     = "fleet-client"
	clientSecret = "fleet-secret"
	username     = "user@example.com"
	password     = "fleet-password"
)

// providerStats counts what the provider saw.
type providerStats struct {
	Refreshes     int // successful refresh_token grants
	InvalidGrants int // refresh tokens refused (reused, unknown)
	APIRefused    int // API requests with a missing, unknown or expired token
}

// A provider is a local OAuth 2 provider and API.
type provider struct {
	*httptest.Server

	mu           sync.Mutex // guards everything below
	lifetime     time.Duration
	refreshDelay time.Duration
	n            int
	access       map[string]time.Time // access token → expiry
	refresh      map[string]bool      // refresh token → still usable
	stats        providerStats
}

// newProvider starts a provider on 127.0.0.1 whose access tokens live for
// lifetime and whose refreshes each take refreshDelay.
func newProvider(lifetime, refreshDelay time.Duration) *provider {
	p := &provider{
		lifetime:     lifetime,
		refreshDelay: refreshDelay,
		access:       make(map[string]time.Time),
		refresh:      make(map[string]bool),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", p.token)
	mux.HandleFunc("GET /api/me", p.api)
	p.Server = httptest.NewServer(mux)
	return p
}

// configFor is the oauth2.Config of the provider at url.
func configFor(url string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: url + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// Stats returns the counters so far.
func (p *provider) Stats() providerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// ExpireAll makes every access token issued so far expired.
func (p *provider) ExpireAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.access {
		p.access[t] = time.Time{}
	}
}

func (p *provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("client_id") != clientID || r.PostForm.Get("client_secret") != clientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		p.mu.Lock()
		delay := p.refreshDelay
		p.mu.Unlock()
		time.Sleep(delay) // a wider window for two hosts to race
		p.mu.Lock()
		defer p.mu.Unlock()
		rt := r.PostForm.Get("refresh_token")
		if !p.refresh[rt] {
			p.stats.InvalidGrants++
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		p.stats.Refreshes++
		p.refresh[rt] = false // a refresh token works once
		p.issue(w)
	case "password":
		if r.PostForm.Get("username") != username || r.PostForm.Get("password") != password {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.issue(w)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// issue writes a token response with a new access and refresh token; p.mu
// is held.
func (p *provider) issue(w http.ResponseWriter) {
	p.n++
	at, rt := fmt.Sprintf("access-%d", p.n), fmt.Sprintf("refresh-%d", p.n)
	p.access[at] = time.Now().Add(p.lifetime)
	p.refresh[rt] = true
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token":  at,
		"refresh_token": rt,
		"token_type":    "Bearer",
		"expires_in":    max(int(p.lifetime/time.Second), 1),
	})
}

func oauthError(w http.ResponseWriter, code int, e string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": e})
}

func (p *provider) api(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	exp, known := p.access[at]
	valid := ok && known && time.Now().Before(exp)
	if !valid {
		p.stats.APIRefused++
	}
	p.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid or expired access token", http.StatusUnauthorized)
		return
	}
	fmt.Fprintln(w, `{"ok":true}`)
}

// callAPI makes one GET request with client (an oauth2 client) and fails
// unless the API answers 200 OK.
func callAPI(ctx context.Context, client *http.Client, url string) error {
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
