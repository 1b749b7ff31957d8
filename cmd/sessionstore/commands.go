package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
			scope = orDash(cliutil.Clean(r.Auth.Scope))
			ref = orDash(cliutil.Clean(r.Auth.Ref.String()))
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
	if o.jsonOut {
		if err := json.NewEncoder(o.Stdout).Encode(jsonOf(r, t, true, reveal)); err != nil {
			return o.Fail(err)
		}
	} else {
		printShow(o.Stdout, r, t, reveal)
	}
	if r.Err != nil {
		return o.Fail(fmt.Errorf("session %s does not open: %w", strconv.Quote(r.AuthType), r.Err))
	}
	return 0
}

func printShow(w io.Writer, r protocol.Record, t time.Time, reveal bool) {
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
	line("token type", orDash(cliutil.Clean(a.TokenType)))
	tok := func(s string) string {
		switch {
		case s == "":
			return "none"
		case reveal:
			return s
		default:
			return "[redacted]"
		}
	}
	line("access token", tok(a.AccessToken))
	line("refresh token", tok(a.RefreshToken))
	line("transfer token", tok(a.TransferToken))
	line("scope", orDash(cliutil.Clean(a.Scope)))
	line("ref", orDash(cliutil.Clean(a.Ref.String())))
	switch {
	case len(a.Extra) == 0:
	case reveal:
		data, err := json.Marshal(a.Extra)
		if err != nil {
			data = []byte("(does not encode)")
		}
		line("extra", string(data))
	default:
		line("extra", strings.Join(slices.Sorted(maps.Keys(a.Extra)), ", ")+" (values redacted)")
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
		expired := !a.Expiry.After(t)
		j.Expired = &expired
	}
	hasRefresh := a.RefreshToken != ""
	j.HasRefreshToken = &hasRefresh
	j.Scope = a.Scope
	if a.Ref != (sessionstore.Ref{}) {
		j.Ref = &a.Ref
	}
	j.Health = "fine"
	if h := a.Health; !h.NeedsLogin.IsZero() {
		j.Health, j.NeedsLogin, j.Reason = "needs login", h.NeedsLogin.UTC(), h.Reason
	}
	if !a.Health.LastRefresh.IsZero() {
		j.LastRefresh = a.Health.LastRefresh.UTC()
	}
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
