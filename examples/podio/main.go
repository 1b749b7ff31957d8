// Command podio shows sessionstore as the session manager of a Podio
// client: the password flow stored under "password", and Podio's app flow
// (grant_type=app with app_id and app_token) plugged in as a sessionstore.Refresher and
// stored under "app:<app_id>".
//
//	podio -dir DIR -key FILE -client-id ID -username U     # password flow
//	podio -dir DIR -key FILE -client-id ID -app-id ID      # app flow
//
// The client secret, the password and the app token are never flags (any
// user on the host sees a command line in ps): they come from
// $PODIO_CLIENT_SECRET, $PODIO_PASSWORD and $PODIO_APP_TOKEN, or from files
// (-client-secret-file, -password-file, -app-token-file).
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

const usage = `Usage:
    podio -dir DIR [-key FILE] -client-id ID -username U     (password flow)
    podio -dir DIR [-key FILE] -client-id ID -app-id ID      (app flow)

Secrets are never flags (any user on the host sees a command line in ps).
Each comes from its environment variable, or from a file named by a flag:
    client secret   $PODIO_CLIENT_SECRET   or -client-secret-file F
    password        $PODIO_PASSWORD        or -password-file F
    app token       $PODIO_APP_TOKEN       or -app-token-file F
A file holds the secret on its first line, and must be readable by its
owner only (mode 0600). A file given wins over the environment.

Options:
    -dir DIR        The store directory (created, mode 0700, if missing).
    -key FILE       The key file (default $SESSIONSTORE_KEY_FILE).
    -client-id ID   The Podio API client id.
    -username U     Password flow: the user name.
    -app-id ID      App flow: the app id.
    -token-url URL  The token endpoint (default Podio's).
    -api-url URL    The API endpoint to call (default Podio's user/status).

Example:
    $ read -rs PODIO_CLIENT_SECRET; read -rs PODIO_PASSWORD   # not echoed
    $ export PODIO_CLIENT_SECRET PODIO_PASSWORD
    $ podio -dir /var/lib/myjob/sessions -key /etc/myjob/sessionstore.key \
          -client-id myjob -username me@example.com
`

// Where the secrets come from.
const (
	clientSecretEnv = "PODIO_CLIENT_SECRET"
	passwordEnv     = "PODIO_PASSWORD"
	appTokenEnv     = "PODIO_APP_TOKEN"
)

// A usageError is a usage error (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErr(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "podio: error:", err)
		if _, ok := errors.AsType[*usageError](err); ok {
			fmt.Fprintln(os.Stderr, `podio: run "podio -h" for usage`)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// secret reads a secret from file if it is given (by the flag fileFlag),
// else from the environment variable env; what says which secret it is.
func secret(what, env, fileFlag, file string) (string, error) {
	if file == "" {
		if v := os.Getenv(env); v != "" {
			return v, nil
		}
		return "", usageErr("no %s: set $%s, or pass -%s FILE", what, env, fileFlag)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s file %s is not a regular file", what, file)
	}
	if os.PathSeparator == '/' && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s file %s is accessible by group or others (mode %04o, want 0600)", what, file, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	defer clear(data)
	line, _, _ := strings.Cut(string(data), "\n")
	if line = strings.TrimSuffix(line, "\r"); line == "" {
		return "", fmt.Errorf("%s file %s: its first line is empty", what, file)
	}
	return line, nil
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
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "")
	key := fs.String("key", "", "")
	clientID := fs.String("client-id", "", "")
	clientSecretFile := fs.String("client-secret-file", "", "")
	username := fs.String("username", "", "")
	passwordFile := fs.String("password-file", "", "")
	appID := fs.String("app-id", "", "")
	appTokenFile := fs.String("app-token-file", "", "")
	tokenURL := fs.String("token-url", PodioTokenURL, "")
	apiURL := fs.String("api-url", PodioAPIURL, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, usage)
			return nil
		}
		return usageErr("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *dir == "" || *clientID == "" || (*username == "") == (*appID == ""):
		return usageErr("need -dir, -client-id, and either -username (password flow) or -app-id (app flow)")
	case *username != "" && *appTokenFile != "", *appID != "" && *passwordFile != "":
		return usageErr("-password-file goes with -username, -app-token-file with -app-id")
	}
	clientSecret, err := secret("client secret", clientSecretEnv, "client-secret-file", *clientSecretFile)
	if err != nil {
		return err
	}
	var password, appToken string
	if *appID != "" {
		appToken, err = secret("app token", appTokenEnv, "app-token-file", *appTokenFile)
	} else {
		password, err = secret("password", passwordEnv, "password-file", *passwordFile)
	}
	if err != nil {
		return err
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
	cfg := Config(*clientID, clientSecret, *tokenURL)

	// Podio's session manager: get(authType) before authenticating,
	// set(authObject, authType) after.
	var authType string
	var refresh sessionstore.Refresher
	var login func() (*oauth2.Token, error)
	if *appID != "" {
		authType = "app:" + *appID
		refresh = AppRefresher(cfg, *appID, appToken)
		login = func() (*oauth2.Token, error) { return appGrant(ctx, cfg, *appID, appToken) }
	} else {
		authType = "password"
		refresh = sessionstore.ConfigRefresher(cfg)
		login = func() (*oauth2.Token, error) { return cfg.PasswordCredentialsToken(ctx, *username, password) }
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
