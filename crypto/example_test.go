package crypto_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/sessionstore/sessionstore/crypto"
)

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
