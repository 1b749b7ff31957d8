package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// timeFormat is how times are printed: UTC, to the second.
const timeFormat = "2006-01-02T15:04:05Z"

func runList(ctx context.Context, b *backend, o *options) int {
	recs, err := b.ReadRecords(ctx, b.ring)
	if err != nil {
		return o.Fail(err)
	}
	t := now()
	enc := json.NewEncoder(o.Stdout)
	tw := tabwriter.NewWriter(o.Stdout, 0, 0, 2, ' ', 0)
	if !o.jsonOut {
		fmt.Fprintln(tw, "NAME\tEXPIRES\tREFRESH\tHEALTH\tSCOPE\tREF\tWRITTEN\tKEY\tSTATUS")
	}
	bad := 0
	for _, r := range recs {
		if r.Err != nil {
			bad++
		}
		if o.jsonOut {
			if err := enc.Encode(jsonOf(r, t, false, false)); err != nil {
				return o.Fail(err)
			}
			continue
		}
		expires, refresh, health, scope, ref, written := "-", "-", "-", "-", "-", "-"
		if r.Err == nil {
			expires = expiryText(r.Auth.Expiry, t)
			refresh = "no"
			if r.Auth.RefreshToken != "" {
				refresh = "yes"
			}
			health = healthText(r.Auth.Health, t, true)
			scope = cmp.Or(cliutil.Clean(r.Auth.Scope), "-")
			ref = cmp.Or(cliutil.Clean(r.Auth.Ref.String()), "-")
			written = r.Written.UTC().Format(timeFormat)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cliutil.Clean(r.AuthType), expires, refresh, health, scope, ref, written, keyLabel(r), statusOf(r.Err))
	}
	if err := tw.Flush(); err != nil {
		return o.Fail(err)
	}
	if bad > 0 {
		return o.Fail(fmt.Errorf("%d of %d sessions do not open; \"sessionstore show NAME\" says why", bad, len(recs)))
	}
	return 0
}

func runShow(ctx context.Context, b *backend, o *options) int {
	r, err := b.ReadRecord(ctx, b.ring, o.args[0])
	if err = b.found(o.args[0], err); err != nil {
		return o.Fail(err)
	}
	reveal := o.reveal && r.Err == nil
	if reveal {
		fmt.Fprintf(o.Stderr, "sessionstore: warning: printing the tokens of session %s: whoever sees them can act as this session\n", strconv.Quote(r.AuthType))
	}
	t := now()
	j := jsonOf(r, t, true, reveal)
	if o.jsonOut {
		err = json.NewEncoder(o.Stdout).Encode(j)
	} else {
		printShow(o.Stdout, r, j, t)
	}
	if err == nil && r.Err != nil {
		err = fmt.Errorf("session %s does not open: %w", strconv.Quote(r.AuthType), r.Err)
	}
	if err != nil {
		return o.Fail(err)
	}
	return 0
}

// printShow prints r, its tokens as j (from jsonOf) holds them.
func printShow(w io.Writer, r protocol.Record, j jsonRecord, t time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	defer tw.Flush()
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("name", cliutil.Clean(r.AuthType))
	line("status", statusOf(r.Err))
	if r.Err != nil {
		line("key", keyLabel(r))
		line("error", cliutil.Escape(r.Err.Error()))
		return
	}
	line("key", fmt.Sprintf("%s (%s)", keyLabel(r), r.PublicKey))
	line("written", fmt.Sprintf("%s (%s, seq %d)", r.Written.UTC().Format(timeFormat), ago(t.Sub(r.Written)), r.Seq))
	a := r.Auth
	line("expires", expiryText(a.Expiry, t))
	line("health", healthText(a.Health, t, false))
	lastRefresh := "never (by a token source)"
	if !a.Health.LastRefresh.IsZero() {
		lastRefresh = a.Health.LastRefresh.UTC().Format(timeFormat) + " (" + ago(t.Sub(a.Health.LastRefresh)) + ")"
	}
	line("last refresh", lastRefresh)
	line("token type", cmp.Or(cliutil.Clean(a.TokenType), "-"))
	line("access token", cmp.Or(j.AccessToken, "none"))
	line("refresh token", cmp.Or(j.RefreshToken, "none"))
	line("transfer token", cmp.Or(j.TransferToken, "none"))
	line("scope", cmp.Or(cliutil.Clean(a.Scope), "-"))
	line("ref", cmp.Or(cliutil.Clean(a.Ref.String()), "-"))
	switch {
	case len(j.Extra) > 0:
		data, err := json.Marshal(j.Extra)
		if err != nil {
			data = []byte("(does not encode)")
		}
		line("extra", string(data))
	case len(j.ExtraKeys) > 0:
		line("extra", strings.Join(j.ExtraKeys, ", ")+" (values redacted)")
	}
}

// jsonRecord is one line of -json output. Its token fields are filled
// only by show, and hold a token only with -reveal.
type jsonRecord struct {
	Name            string            `json:"name"`
	Status          string            `json:"status"`
	Error           string            `json:"error,omitempty"`
	Key             string            `json:"key"`
	KeyIndex        int               `json:"key_index"`
	PublicKey       string            `json:"public_key,omitempty"`
	Seq             uint64            `json:"seq,omitempty"`
	Written         time.Time         `json:"written,omitzero"`
	Expiry          time.Time         `json:"expiry,omitzero"`
	Expired         *bool             `json:"expired,omitempty"`
	HasRefreshToken *bool             `json:"has_refresh_token,omitempty"`
	Scope           string            `json:"scope,omitempty"`
	Ref             *sessionstore.Ref `json:"ref,omitempty"`
	Health          string            `json:"health,omitempty"` // "fine" or "needs login"
	NeedsLogin      time.Time         `json:"needs_login,omitzero"`
	Reason          string            `json:"reason,omitempty"`
	LastRefresh     time.Time         `json:"last_refresh,omitzero"`

	TokenType     string         `json:"token_type,omitempty"`
	AccessToken   string         `json:"access_token,omitempty"`
	RefreshToken  string         `json:"refresh_token,omitempty"`
	TransferToken string         `json:"transfer_token,omitempty"`
	ExtraKeys     []string       `json:"extra_keys,omitempty"`
	Extra         map[string]any `json:"extra,omitempty"`
}

func jsonOf(r protocol.Record, t time.Time, show, reveal bool) jsonRecord {
	j := jsonRecord{Name: r.AuthType, Status: statusOf(r.Err), Key: keyLabel(r), KeyIndex: r.Key, PublicKey: r.PublicKey}
	if r.Err != nil {
		j.Error = r.Err.Error()
		return j
	}
	a := r.Auth
	j.Seq, j.Written = r.Seq, r.Written.UTC()
	if !a.Expiry.IsZero() {
		j.Expiry = a.Expiry.UTC()
		j.Expired = new(!a.Expiry.After(t))
	}
	j.HasRefreshToken = new(a.RefreshToken != "")
	j.Scope = a.Scope
	if a.Ref != (sessionstore.Ref{}) {
		j.Ref = &a.Ref
	}
	j.Health = "fine"
	if h := a.Health; !h.NeedsLogin.IsZero() {
		j.Health, j.NeedsLogin, j.Reason = "needs login", h.NeedsLogin.UTC(), h.Reason
	}
	j.LastRefresh = a.Health.LastRefresh.UTC() // omitted when zero
	if !show {
		return j
	}
	j.TokenType = a.TokenType
	redact := func(s string) string {
		if s == "" || reveal {
			return s
		}
		return "[redacted]"
	}
	j.AccessToken, j.RefreshToken, j.TransferToken = redact(a.AccessToken), redact(a.RefreshToken), redact(a.TransferToken)
	if reveal {
		j.Extra = a.Extra
	} else if len(a.Extra) > 0 {
		j.ExtraKeys = slices.Sorted(maps.Keys(a.Extra))
	}
	return j
}

// healthText is "fine" (in a listing: with the last refresh), or "needs
// login since TIME (REASON)".
func healthText(h sessionstore.Health, t time.Time, withRefresh bool) string {
	if h.NeedsLogin.IsZero() {
		if withRefresh && !h.LastRefresh.IsZero() {
			return "fine, refreshed " + ago(t.Sub(h.LastRefresh))
		}
		return "fine"
	}
	s := "needs login since " + h.NeedsLogin.UTC().Format(timeFormat)
	if h.Reason != "" {
		s += " (" + cliutil.Clean(h.Reason) + ")"
	}
	return s
}

// statusOf names what is wrong with a record, if anything.
func statusOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, sessionstore.ErrWrongKey):
		return "wrong key"
	case errors.Is(err, sessionstore.ErrRollback):
		return "rolled back"
	case errors.Is(err, sessionstore.ErrTampered):
		return "tampered"
	default:
		return "unreadable"
	}
}

// keyLabel says which identity of the key file opens a record.
func keyLabel(r protocol.Record) string {
	switch {
	case r.Err != nil || r.Key < 0:
		return "none"
	case r.Key == 0:
		return "primary"
	default:
		return "old"
	}
}

// expiryText is an expiry, absolute and relative to t.
func expiryText(exp, t time.Time) string {
	if exp.IsZero() {
		return "never"
	}
	abs := exp.UTC().Format(timeFormat)
	if d := exp.Sub(t); d > 0 {
		return abs + " (in " + span(d) + ")"
	}
	return abs + " (expired " + ago(t.Sub(exp)) + ")"
}

// ago is "3d ago", "just now" for under a second, "in 5m" for a time to
// come (a clock set wrong somewhere).
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + span(-d)
	case d < time.Second:
		return "just now"
	}
	return span(d) + " ago"
}

// span is a duration rounded down to what matters: "45s", "12m", "7h12m",
// "3d4h", "12d".
func span(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < day:
		if m := d % time.Hour / time.Minute; m > 0 {
			return fmt.Sprintf("%dh%dm", d/time.Hour, m)
		}
		return fmt.Sprintf("%dh", d/time.Hour)
	case d < 7*day:
		if h := d % day / time.Hour; h > 0 {
			return fmt.Sprintf("%dd%dh", d/day, h)
		}
		fallthrough
	default:
		return fmt.Sprintf("%dd", d/day)
	}
}

// clientSecretEnv holds the client secret, never a flag (ps shows flags).
const clientSecretEnv = "SESSIONSTORE_CLIENT_SECRET"

// exitNeedsLogin is token's exit code for a session that needs a new login.
const exitNeedsLogin = 4

func runToken(ctx context.Context, b *backend, o *options) int {
	name := o.args[0]
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return o.Fail(err)
	}
	secret := os.Getenv(clientSecretEnv) // empty for a public client
	if o.secretFile != "" {
		var err error
		if secret, err = cliutil.ReadSecretLine("client secret file", o.secretFile); err != nil {
			return o.Fail(err)
		}
	}
	cfg := &oauth2.Config{ClientID: o.clientID, ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: o.tokenURL}}
	var s sessionstore.Store = readingStore{b: b}
	if o.dir != "" {
		var err error
		if s, err = b.open(ctx); err != nil { // reading takes no lock
			return o.Fail(err)
		}
	}
	// A missing session is reported from a read: the token source would
	// take the record's lock (on a fleet, open a Store) to find it missing.
	_, err := s.Get(ctx, name)
	var tok *oauth2.Token
	if err == nil {
		tok, err = sessionstore.TokenSource(ctx, s, name, sessionstore.ConfigRefresher(cfg)).Token()
	}
	switch {
	case errors.Is(err, sessionstore.ErrNeedsLogin):
		o.Fail(err)
		fmt.Fprintf(o.Stderr, "sessionstore: session %s needs a new login: log in again and store the new session (sessionstore import -force)\n", strconv.Quote(name))
		return exitNeedsLogin
	case err != nil:
		return o.Fail(b.found(name, err))
	case o.jsonOut:
		err = json.NewEncoder(o.Stdout).Encode(struct {
			Name        string    `json:"name"`
			AccessToken string    `json:"access_token"`
			TokenType   string    `json:"token_type,omitempty"`
			Expiry      time.Time `json:"expiry,omitzero"`
		}{name, tok.AccessToken, tok.TokenType, tok.Expiry.UTC()})
	default:
		_, err = fmt.Fprintln(o.Stdout, tok.AccessToken)
	}
	if err != nil {
		return o.Fail(err)
	}
	return 0
}

// readingStore is a fleet as token uses it: Get reads without a Store (no
// lease, no heartbeat); Update opens the Store. TokenSource calls nothing
// else.
type readingStore struct {
	sessionstore.Store
	b *backend
}

func (r readingStore) Get(ctx context.Context, name string) (sessionstore.AuthObject, error) {
	rec, err := r.b.ReadRecord(ctx, r.b.ring, name)
	if err == nil {
		err = rec.Err
	}
	return rec.Auth, err
}

func (r readingStore) Update(ctx context.Context, name string,
	fn func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	s, err := r.b.open(ctx)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	return s.Update(ctx, name, fn)
}
