package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// The scripts' OAuth providers (sessionstoretest), one per script.
var providers struct {
	sync.Mutex
	m map[*testscript.TestScript]*sessionstoretest.Provider
}

// provider [start [LIFETIME]]: start this script's OAuth provider
// (tokens living LIFETIME, default 1h), stopped when the script ends, and
// set $TOKEN_URL, $CLIENT_ID and $SESSIONSTORE_CLIENT_SECRET for it.
//
// provider login KEY DIR NAME [expired]: log in (password grant) and store
// the session under NAME in DIR ("etcd:" for $ETCD, $PREFIX), its access
// token already expired if asked.
//
// provider revoke: every refresh token issued so far is refused
// (invalid_grant). provider fail [off]: the token endpoint answers 503
// (or works again). provider requests N: the token endpoint had N
// requests so far.
func cmdProvider(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 || args[0] == "start" {
		if len(args) > 2 {
			ts.Fatalf("usage: provider [start [LIFETIME]]")
		}
		life := time.Hour
		if len(args) == 2 {
			var err error
			life, err = time.ParseDuration(args[1])
			ts.Check(err)
		}
		p := sessionstoretest.NewProvider(life)
		providers.Lock()
		if providers.m == nil {
			providers.m = map[*testscript.TestScript]*sessionstoretest.Provider{}
		}
		providers.m[ts] = p
		providers.Unlock()
		ts.Defer(func() {
			p.Close()
			providers.Lock()
			delete(providers.m, ts)
			providers.Unlock()
		})
		ts.Setenv("TOKEN_URL", p.TokenURL())
		ts.Setenv("CLIENT_ID", sessionstoretest.ClientID)
		ts.Setenv(clientSecretEnv, sessionstoretest.ClientSecret)
		return
	}
	providers.Lock()
	p := providers.m[ts]
	providers.Unlock()
	if p == nil {
		ts.Fatalf("no provider: run \"provider\" first")
	}
	switch args[0] {
	case "login":
		if len(args) != 4 && !(len(args) == 5 && args[4] == "expired") {
			ts.Fatalf("usage: provider login KEY DIR NAME [expired]")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
		ts.Check(err)
		a := sessionstore.FromToken(tok)
		if len(args) == 5 {
			a.Expiry = time.Now().Add(-time.Minute)
		}
		if s, closeAll, ok := openFleetStore(ctx, ts, args[1], args[2]); ok {
			defer closeAll()
			ts.Check(s.Set(ctx, args[3], a))
			return
		}
		s, err := filestore.Open(ts.MkAbs(args[2]), filestore.WithKeyFile(ts.MkAbs(args[1])), filestore.WithoutWatcher())
		ts.Check(err)
		defer s.Close()
		ts.Check(s.Set(ctx, args[3], a))
	case "revoke":
		p.RevokeRefreshTokens()
	case "fail":
		p.SetFailing(len(args) == 1 || args[1] != "off")
	case "requests":
		if len(args) != 2 {
			ts.Fatalf("usage: provider requests N")
		}
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		if got := p.Stats().TokenRequests; (got == want) == neg {
			ts.Fatalf("the token endpoint had %d requests, want %d", got, want)
		}
	default:
		ts.Fatalf("provider: unknown subcommand %q", args[0])
	}
}

// token exits 4 for a session that needs a new login, 1 for another
// failure, 2 for a usage error; a script cannot see exit codes.
func TestTokenExitCodes(t *testing.T) {
	t.Setenv(clientSecretEnv, sessionstoretest.ClientSecret)
	ctx := context.Background()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "store.key")
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := crypto.CreateKeyFile(keyFile, k); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "s")
	s, err := filestore.Open(store, filestore.WithKeyFile(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	if err != nil {
		t.Fatal(err)
	}
	a := sessionstore.FromToken(tok)
	a.Expiry = time.Now().Add(-time.Minute)
	if err := s.Set(ctx, "server", a); err != nil {
		t.Fatal(err)
	}
	token := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"token", "-dir", store, "-key", keyFile}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	provider := []string{"-token-url", p.TokenURL(), "-client-id", sessionstoretest.ClientID}

	p.SetFailing(true)
	code, out, errOut := token(append(provider, "server")...)
	if code != 1 || out != "" || !strings.Contains(errOut, "temporarily_unavailable") {
		t.Errorf("503: exit %d, stdout %q, stderr %q; want 1 and the provider's error", code, out, errOut)
	}
	p.SetFailing(false)
	p.RevokeRefreshTokens()
	var requests int
	for i := range 2 { // the first marks it; the second finds the mark
		if i == 1 {
			requests = p.Stats().TokenRequests
		}
		code, out, errOut = token(append(provider, "server")...)
		if code != exitNeedsLogin || out != "" || !strings.Contains(errOut, "needs a new login") {
			t.Errorf("dead refresh token: exit %d, stdout %q, stderr %q; want %d and \"needs a new login\"", code, out, errOut, exitNeedsLogin)
		}
		if strings.Contains(errOut, a.RefreshToken) || strings.Contains(errOut, a.AccessToken) {
			t.Error("a token in the error")
		}
	}
	if got := p.Stats().TokenRequests; got != requests {
		t.Errorf("the marked session cost %d token requests, want none", got-requests)
	}
	if code, _, errOut := token("server"); code != 2 || !strings.Contains(errOut, "-token-url URL -client-id ID") {
		t.Errorf("no provider: exit %d, stderr %q; want 2", code, errOut)
	}
	if code, _, _ := token(provider...); code != 2 {
		t.Errorf("no name: exit %d, want 2", code)
	}
	if code, _, errOut := token(append(provider, "nosuch")...); code != 1 || !strings.Contains(errOut, `no session "nosuch" in`) {
		t.Errorf("no session: exit %d, stderr %q; want 1", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(store, "nosuch.lock")); err == nil {
		t.Error("a missing session's read took its lock")
	}
}
