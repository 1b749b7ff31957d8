package crypto_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/sessionstore/sessionstore/crypto"
)

// A sealed record is an age file that only a key holder could have
// written, bound to its auth type.
func ExampleKeyring_Seal() {
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := k.Seal(&crypto.Record{
		AuthType: "server",
		Seq:      1,
		Written:  time.Now(),
		Auth:     json.RawMessage(`{"access_token":"example"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitN(string(sealed), "\n", 2)[0])

	rec, key, err := k.Open(sealed, "server")
	fmt.Println(string(rec.Auth), "opened by identity", key, err)

	_, _, err = k.Open(sealed, "client")
	fmt.Println(err)
	// Output:
	// age-encryption.org/v1
	// {"access_token":"example"} opened by identity 0 <nil>
	// record is forged, corrupt or bound to another name: record belongs to auth type "server"
}

// Key files are age-keygen's format: age reads them, and records.
func ExampleKeyring_MarshalKeyFile() {
	k, err := crypto.GenerateKeyring(true)
	if err != nil {
		log.Fatal(err)
	}
	file := k.MarshalKeyFile(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
	ids, err := age.ParseIdentities(bytes.NewReader(file))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitN(string(file), "\n", 2)[0])
	fmt.Printf("%d identity, post-quantum: %v, recipient prefix: %s\n", len(ids), k.PostQuantum(), k.PublicKey(0)[:7])
	// Output:
	// # created: 2026-11-27T00:00:00Z
	// 1 identity, post-quantum: true, recipient prefix: age1pq1
}
