// Command age-plugin-sstest is an age plugin for sessionstore's tests: a
// real plugin process that wraps an X25519 key (its recipient and identity
// carry an age1… recipient and an AGE-SECRET-KEY-1… identity). Each run
// appends its protocol to the file named by $SSTEST_PLUGIN_LOG; with
// $SSTEST_PLUGIN_REFUSE set, it refuses with that message.
package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"filippo.io/age"
	"filippo.io/age/plugin"
)

const stanzaType = "sstest"

func main() {
	if f := os.Getenv("SSTEST_PLUGIN_LOG"); f != "" {
		log, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "age-plugin-sstest:", err)
			os.Exit(1)
		}
		fmt.Fprintln(log, os.Args[1:])
		log.Close()
	}
	p, err := plugin.New("sstest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "age-plugin-sstest:", err)
		os.Exit(1)
	}
	var refusal error
	if msg := os.Getenv("SSTEST_PLUGIN_REFUSE"); msg != "" {
		refusal = errors.New(msg)
	}
	p.HandleRecipient(func(data []byte) (age.Recipient, error) {
		r, err := age.ParseX25519Recipient(string(data))
		return recipient{r}, cmp.Or(refusal, err)
	})
	p.HandleIdentity(func(data []byte) (age.Identity, error) {
		id, err := age.ParseX25519Identity(string(data))
		return identity{id}, cmp.Or(refusal, err)
	})
	os.Exit(p.Main())
}

type recipient struct{ r *age.X25519Recipient }

func (r recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	ss, err := r.r.Wrap(fileKey)
	for _, s := range ss {
		s.Type = stanzaType
	}
	return ss, err
}

type identity struct{ id *age.X25519Identity }

func (i identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	var ours []*age.Stanza
	for _, s := range stanzas {
		if s.Type == stanzaType {
			c := *s
			c.Type = "X25519"
			ours = append(ours, &c)
		}
	}
	if len(ours) == 0 {
		return nil, age.ErrIncorrectIdentity
	}
	return i.id.Unwrap(ours)
}
