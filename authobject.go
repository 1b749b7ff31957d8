package sessionstore

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// An AuthObject is one stored session: what an OAuth 2 token endpoint
// returned, with an absolute expiry, plus Podio's ref and transfer token.
// Its tokens print as "[redacted]" in fmt (any verb), log/slog (any
// handler, at any depth) and encoding/json output.
type AuthObject struct {
	AccessToken   string         `json:"access_token"`
	RefreshToken  string         `json:"refresh_token,omitempty"`
	TokenType     string         `json:"token_type,omitempty"`
	Expiry        time.Time      `json:"expiry,omitzero"` // absolute, never relative
	Scope         string         `json:"scope,omitempty"`
	Ref           Ref            `json:"ref,omitzero"` // Podio: {type:"user", id:123}
	TransferToken string         `json:"transfer_token,omitempty"`
	Extra         map[string]any `json:"extra,omitempty"`
	Health        Health         `json:"health,omitzero"`
}

// Health is what token sources learned of a session, stored with it for
// every process and host. It holds no secret. While NeedsLogin is set,
// every TokenSource returns ErrNeedsLogin without asking the provider; Set
// replaces Health as it replaces every field.
type Health struct {
	NeedsLogin  time.Time `json:"needs_login,omitzero"`  // when the provider refused the stored refresh token; zero: fine
	Reason      string    `json:"reason,omitempty"`      // the provider's error code ("invalid_grant"), never a token or description
	LastRefresh time.Time `json:"last_refresh,omitzero"` // last successful refresh by a TokenSource
}

// Ref is what a Podio session authenticates as: {type:"user", id:123} or
// {type:"app", id:456}.
type Ref struct {
	Type string `json:"type"`
	ID   int64  `json:"id"`
}

const redacted = "[redacted]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// String returns a description of a without its tokens; of Extra, which
// may hold tokens too (an id_token), only the keys.
func (a AuthObject) String() string {
	return fmt.Sprintf("{AccessToken:%s RefreshToken:%s TokenType:%s Expiry:%s Scope:%s Ref:%s TransferToken:%s Extra:%s%s}",
		redact(a.AccessToken), redact(a.RefreshToken), a.TokenType, a.Expiry.Format(time.RFC3339),
		a.Scope, a.Ref, redact(a.TransferToken), slices.Sorted(maps.Keys(a.Extra)), healthText(a.Health))
}

// healthText is " Health:{...}" with h's non-zero fields, or "".
func healthText(h Health) string {
	if h == (Health{}) {
		return ""
	}
	var parts []string
	if !h.NeedsLogin.IsZero() {
		parts = append(parts, "NeedsLogin:"+h.NeedsLogin.Format(time.RFC3339))
	}
	if h.Reason != "" {
		parts = append(parts, "Reason:"+h.Reason)
	}
	if !h.LastRefresh.IsZero() {
		parts = append(parts, "LastRefresh:"+h.LastRefresh.Format(time.RFC3339))
	}
	return " Health:{" + strings.Join(parts, " ") + "}"
}

// Format implements fmt.Formatter so that no verb prints a token.
func (a AuthObject) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, "sessionstore.AuthObject")
	}
	fmt.Fprint(f, a.String())
}

// LogValue implements slog.LogValuer: tokens are redacted, Extra shows its
// keys only.
func (a AuthObject) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_token", redact(a.AccessToken)),
		slog.String("refresh_token", redact(a.RefreshToken)),
		slog.String("token_type", a.TokenType),
		slog.Time("expiry", a.Expiry),
		slog.String("scope", a.Scope),
		slog.String("ref", a.Ref.String()),
		slog.String("transfer_token", redact(a.TransferToken)),
		slog.Any("extra_keys", slices.Sorted(maps.Keys(a.Extra))),
		slog.Attr{Key: "health", Value: a.Health.logValue()}, // omitted when zero
	)
}

func (h Health) logValue() slog.Value {
	var attrs []slog.Attr
	if !h.NeedsLogin.IsZero() {
		attrs = append(attrs, slog.Time("needs_login", h.NeedsLogin))
	}
	if h.Reason != "" {
		attrs = append(attrs, slog.String("reason", h.Reason))
	}
	if !h.LastRefresh.IsZero() {
		attrs = append(attrs, slog.Time("last_refresh", h.LastRefresh))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON implements json.Marshaler with the tokens redacted (slog's
// JSON handler marshals nested values without calling LogValue) and
// Extra's keys only.
func (a AuthObject) MarshalJSON() ([]byte, error) {
	type fields AuthObject // without this method
	f := fields(a)
	f.AccessToken = redact(a.AccessToken)
	f.RefreshToken = redact(a.RefreshToken)
	f.TransferToken = redact(a.TransferToken)
	f.Extra = nil
	return json.Marshal(struct {
		fields
		ExtraKeys []string `json:"extra_keys,omitempty"`
	}{f, slices.Sorted(maps.Keys(a.Extra))})
}

// Equal reports whether a and b hold the same session: equal strings,
// the same instant of expiry, the same ref, deeply equal Extra (nil and
// empty are equal) and the same Health (its times as instants).
func (a AuthObject) Equal(b AuthObject) bool {
	return a.AccessToken == b.AccessToken &&
		a.RefreshToken == b.RefreshToken &&
		a.TokenType == b.TokenType &&
		a.Expiry.Equal(b.Expiry) &&
		a.Scope == b.Scope &&
		a.Ref == b.Ref &&
		a.TransferToken == b.TransferToken &&
		a.Health.NeedsLogin.Equal(b.Health.NeedsLogin) &&
		a.Health.Reason == b.Health.Reason &&
		a.Health.LastRefresh.Equal(b.Health.LastRefresh) &&
		(len(a.Extra) == 0 && len(b.Extra) == 0 || reflect.DeepEqual(a.Extra, b.Extra))
}

func (r Ref) String() string {
	if r == (Ref{}) {
		return ""
	}
	return fmt.Sprintf("%s:%d", r.Type, r.ID)
}

// Token returns a as an *oauth2.Token. Scope, Ref, TransferToken and Extra
// are reachable through the token's Extra method.
func (a AuthObject) Token() *oauth2.Token {
	t := &oauth2.Token{
		AccessToken:  a.AccessToken,
		TokenType:    a.TokenType,
		RefreshToken: a.RefreshToken,
		Expiry:       a.Expiry,
	}
	extra := make(map[string]any, len(a.Extra)+3)
	maps.Copy(extra, a.Extra)
	if a.Scope != "" {
		extra["scope"] = a.Scope
	}
	if a.Ref != (Ref{}) {
		extra["ref"] = map[string]any{"type": a.Ref.Type, "id": a.Ref.ID}
	}
	if a.TransferToken != "" {
		extra["transfer_token"] = a.TransferToken
	}
	if len(extra) == 0 {
		return t
	}
	return t.WithExtra(extra)
}

// FromToken returns the AuthObject of t, with the scope, Podio's ref and
// transfer_token of t.Extra; other extra fields (which *oauth2.Token cannot
// enumerate) are not kept.
func FromToken(t *oauth2.Token) AuthObject {
	if t == nil {
		return AuthObject{}
	}
	a := AuthObject{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    t.TokenType,
		Expiry:       t.Expiry,
	}
	if s, ok := t.Extra("scope").(string); ok {
		a.Scope = s
	}
	if s, ok := t.Extra("transfer_token").(string); ok {
		a.TransferToken = s
	}
	a.Ref = refOf(t.Extra("ref"))
	return a
}

// refOf reads a Podio ref from a decoded JSON value.
func refOf(v any) Ref {
	m, ok := v.(map[string]any)
	if !ok {
		return Ref{}
	}
	var r Ref
	r.Type, _ = m["type"].(string)
	switch id := m["id"].(type) {
	case float64:
		r.ID = int64(id)
	case int64:
		r.ID = id
	case int:
		r.ID = int64(id)
	}
	return r
}

// Clone returns a copy of a that shares no mutable state with it: Extra
// is copied deeply (maps and slices, as JSON decodes them).
func (a AuthObject) Clone() AuthObject {
	if a.Extra != nil {
		a.Extra = deepCopy(a.Extra).(map[string]any)
	}
	return a
}

// deepCopy copies the maps and slices of a decoded JSON value.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
