// Command podio shows sessionstore as the session manager of a Podio
// client: the password flow stored under "password", and Podio's app flow
// (grant_type=app with app_id and app_token) plugged in as a sessionstore.Refresher and
// stored under "app:<app_id>".
//
//	podio -dir DIR -key FILE -client-id ID -client-secret SECRET -username U -password P
//	podio -dir DIR -key FILE -client-id ID -client-secret SECRET -app-id ID -app-token T
//
// The first run authenticates and stores the session; later runs (any
// process on the host) reuse it, refreshing it when it expires, so a job
// neither logs in every time nor trips Podio's auth rate limits. The tests
// run it against a local fake provider, never the real API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
)

// Podio's OAuth endpoints.
const (
	PodioAuthURL  = "https://podio.com/oauth/authorize"
	PodioTokenURL = "https://api.podio.com/oauth/token"
	PodioAPIURL   = "https://api.podio.com/user/status"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "podio: error:", err)
		os.Exit(1)
	}
}

// Config returns the oauth2 configuration of a Podio client.
func Config(clientID, clientSecret, tokenURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   PodioAuthURL,
			TokenURL:  tokenURL,
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// AppRefresher authenticates as a Podio app (grant_type=app): an app token
// never expires, so when the session does, the app simply authenticates
// again. Plugged into Store.TokenSource, every process on the host shares
// one app session and authenticates once per expiry.
func AppRefresher(cfg *oauth2.Config, appID, appToken string) sessionstore.Refresher {
	return func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
		return appGrant(ctx, cfg, appID, appToken)
	}
}

// appGrant makes one grant_type=app request, as Podio's SDKs do.
func appGrant(ctx context.Context, cfg *oauth2.Config, appID, appToken string) (*oauth2.Token, error) {
	form := url.Values{
		"grant_type":    {"app"},
		"app_id":        {appID},
		"app_token":     {appToken},
		"client_id":     {cfg.ClientID},
		"client_secret": {cfg.ClientSecret},
	}
	req, err := http.NewRequestWithContext(ctx, "POST", cfg.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := http.DefaultClient
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok {
		client = c
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		re := &oauth2.RetrieveError{Response: resp, Body: body}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil {
			re.ErrorCode = e.Error
		}
		return nil, re
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("app grant: the token response is not JSON")
	}
	tok := &oauth2.Token{TokenType: "Bearer"}
	tok.AccessToken, _ = raw["access_token"].(string)
	tok.RefreshToken, _ = raw["refresh_token"].(string)
	if secs, ok := raw["expires_in"].(float64); ok && secs > 0 {
		tok.Expiry = time.Now().Add(time.Duration(secs) * time.Second)
	}
	if tok.AccessToken == "" {
		return nil, errors.New("app grant: no access_token in the response")
	}
	return tok.WithExtra(raw), nil // keeps Podio's ref for sessionstore.FromToken
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("podio", flag.ContinueOnError)
	dir := fs.String("dir", "", "store directory")
	key := fs.String("key", "", "key file (default $SESSIONSTORE_KEY_FILE)")
	clientID := fs.String("client-id", "", "Podio API client id")
	clientSecret := fs.String("client-secret", "", "Podio API client secret")
	username := fs.String("username", "", "password flow: user name")
	password := fs.String("password", "", "password flow: password")
	appID := fs.String("app-id", "", "app flow: app id")
	appToken := fs.String("app-token", "", "app flow: app token")
	tokenURL := fs.String("token-url", PodioTokenURL, "token endpoint")
	apiURL := fs.String("api-url", PodioAPIURL, "API endpoint to call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *clientID == "" || (*username == "") == (*appID == "") {
		return errors.New("need -dir, -client-id, -client-secret, and either -username/-password or -app-id/-app-token")
	}
	var opts []filestore.Option
	if *key != "" {
		opts = append(opts, filestore.WithKeyFile(*key))
	}
	store, err := filestore.Open(*dir, opts...)
	if err != nil {
		return err
	}
	defer store.Close()
	cfg := Config(*clientID, *clientSecret, *tokenURL)

	// Podio's session manager: get(authType) before authenticating,
	// set(authObject, authType) after.
	var authType string
	var refresh sessionstore.Refresher
	var login func() (*oauth2.Token, error)
	if *appID != "" {
		authType = "app:" + *appID
		refresh = AppRefresher(cfg, *appID, *appToken)
		login = func() (*oauth2.Token, error) { return appGrant(ctx, cfg, *appID, *appToken) }
	} else {
		authType = "password"
		refresh = sessionstore.ConfigRefresher(cfg)
		login = func() (*oauth2.Token, error) { return cfg.PasswordCredentialsToken(ctx, *username, *password) }
	}
	if _, err := store.Get(ctx, authType); errors.Is(err, sessionstore.ErrNotFound) {
		tok, err := login()
		if err != nil {
			return fmt.Errorf("authenticating: %w", err)
		}
		if err := store.Set(ctx, authType, sessionstore.FromToken(tok)); err != nil {
			return err
		}
		fmt.Fprintf(out, "authenticated; session stored as %q\n", authType)
	} else if err != nil {
		return err
	} else {
		fmt.Fprintf(out, "reusing the stored session %q\n", authType)
	}

	ts := sessionstore.TokenSource(ctx, store, authType, refresh)
	resp, err := oauth2.NewClient(ctx, ts).Get(*apiURL)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API: %s", resp.Status)
	}
	auth, err := store.Get(ctx, authType)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "API call OK as %s; session expires %s\n", auth.Ref, auth.Expiry.Format(time.RFC3339))
	return nil
}
