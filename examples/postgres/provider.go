package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// provider is a tiny OAuth 2 server on the loopback interface: the
// password grant and the refresh grant, with single-use (rotating) refresh
// tokens, and an API that accepts only live access tokens.
type provider struct {
	URL      string
	srv      *http.Server
	lifetime time.Duration

	mu      sync.Mutex
	n       int
	access  map[string]time.Time // access token → expiry
	refresh map[string]bool      // refresh token → still usable
	stats   stats
}

type stats struct{ Refreshes, InvalidGrants, APIRefused int }

func newProvider(lifetime time.Duration) (*provider, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &provider{URL: "http://" + l.Addr().String(), lifetime: lifetime,
		access: map[string]time.Time{}, refresh: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", p.token)
	mux.HandleFunc("GET /api/me", p.api)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

func (p *provider) Close() { p.srv.Close() }

// config is the OAuth client of the demo.
func (p *provider) config() *oauth2.Config {
	return &oauth2.Config{ClientID: "demo", ClientSecret: "demo-secret",
		Endpoint: oauth2.Endpoint{TokenURL: p.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

func (p *provider) Stats() stats { p.mu.Lock(); defer p.mu.Unlock(); return p.stats }

// expireAll ends every access token's life now.
func (p *provider) expireAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.access {
		p.access[t] = time.Now()
	}
}

func (p *provider) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.PostFormValue("grant_type") {
	case "password":
		if r.PostFormValue("username") != "demo" || r.PostFormValue("password") != "demo" {
			oauthError(w, "invalid_grant")
			return
		}
	case "refresh_token":
		rt := r.PostFormValue("refresh_token")
		if !p.refresh[rt] {
			p.stats.InvalidGrants++
			oauthError(w, "invalid_grant")
			return
		}
		p.refresh[rt] = false // single use
		p.stats.Refreshes++
	default:
		oauthError(w, "unsupported_grant_type")
		return
	}
	p.n++
	at, rt := fmt.Sprintf("access-%d", p.n), fmt.Sprintf("refresh-%d", p.n)
	p.access[at] = time.Now().Add(p.lifetime)
	p.refresh[rt] = true
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "bearer",
		"refresh_token": rt, "expires_in": int(p.lifetime.Seconds())})
}

func oauthError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (p *provider) api(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok || time.Now().After(exp) {
		p.stats.APIRefused++
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	fmt.Fprintln(w, `{"user":"demo"}`)
}

// callAPI calls the API with client; an answer other than 200 is an error.
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
