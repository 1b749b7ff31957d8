package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		assert.NotContains(t, err.Error(), s, "error text leaks a secret")
	}
}

func TestSetGetRoundTrip(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		s := openStore(t, dir, key, m.opts...)
		want := sampleAuth()
		want.Extra = map[string]any{"id_token": "x", "n": float64(3)}
		require.NoError(t, s.Set(ctx, "server", want))

		got, err := s.Get(ctx, "server")
		require.NoError(t, err)
		assert.True(t, want.Equal(got), "got %v", got)

		// A second Store (another process, in effect) reads it from disk.
		s2 := openStore(t, dir, key, m.opts...)
		got, err = s2.Get(ctx, "server")
		require.NoError(t, err)
		assert.True(t, want.Equal(got), "got %v", got)
	})
}

func TestGetMissingIsNotFound(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		s := openStore(t, dir, newKeyFile(t, false), m.opts...)
		_, err := s.Get(ctxT(t), "server")
		assert.ErrorIs(t, err, sessionstore.ErrNotFound)
		assert.ErrorContains(t, err, filepath.Join(dir, "server.age"))
	})
}

func TestDelete(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir := t.TempDir()
		s := openStore(t, dir, newKeyFile(t, false), m.opts...)
		assert.NoError(t, s.Delete(ctx, "server"), "deleting a missing record is not an error")
		require.NoError(t, s.Set(ctx, "server", sampleAuth()))
		require.NoError(t, s.Delete(ctx, "server"))
		_, err := s.Get(ctx, "server")
		assert.ErrorIs(t, err, sessionstore.ErrNotFound)
		assert.NoFileExists(t, filepath.Join(dir, "server.age"))
		assert.FileExists(t, filepath.Join(dir, "server.lock"), "the lock file is never deleted")
	})
}

func TestGetReturnsCallersCopy(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		s := openStore(t, t.TempDir(), newKeyFile(t, false), m.opts...)
		a := sampleAuth()
		a.Extra = map[string]any{"nested": map[string]any{"k": "v"}, "list": []any{"a"}}
		require.NoError(t, s.Set(ctx, "server", a))
		a.Extra["nested"].(map[string]any)["k"] = "changed by caller after Set"

		for range 3 { // cold, validated, and (in watch mode) trusted hits
			got, err := s.Get(ctx, "server")
			require.NoError(t, err)
			assert.Equal(t, "v", got.Extra["nested"].(map[string]any)["k"])
			got.Extra["nested"].(map[string]any)["k"] = "mutated"
			got.Extra["list"].([]any)[0] = "mutated"
			got.Extra["new"] = 1
			got.AccessToken = "mutated"
		}
		got, err := s.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, "at-SECRET-access", got.AccessToken)
		assert.Equal(t, map[string]any{"nested": map[string]any{"k": "v"}, "list": []any{"a"}}, got.Extra)
	})
}

func TestUpdateNoLostUpdatesAcrossGoroutines(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		// Two Stores on one directory: the lock must work between them
		// too, not only between goroutines of one Store.
		stores := []*filestore.Store{openStore(t, dir, key, m.opts...), openStore(t, dir, key, m.opts...)}
		const workers, each = 8, 10
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range each {
					_, err := stores[w%2].Update(ctx, "counter", increment)
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		got, err := stores[0].Get(ctx, "counter")
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint(workers*each), got.AccessToken)
	})
}

// increment counts in AccessToken.
func increment(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
	n := 0
	if exists {
		fmt.Sscan(cur.AccessToken, &n)
	}
	cur.AccessToken = fmt.Sprint(n + 1)
	return cur, nil
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	before, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	boom := errors.New("boom")
	_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		assert.True(t, exists)
		assert.True(t, cur.Equal(sampleAuth()), "the session reads back")
		return sessionstore.AuthObject{AccessToken: "never stored"}, boom
	})
	assert.ErrorIs(t, err, boom)
	after, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

func TestUpdateMissingSeesNotExists(t *testing.T) {
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	got, err := s.Update(ctxT(t), "server", func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		assert.False(t, exists)
		assert.Equal(t, sessionstore.AuthObject{}, cur)
		return sampleAuth(), nil
	})
	require.NoError(t, err)
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")
}

// badRecords returns ways to spoil dir/server.age, with the error a reader
// must get. other is a record of the auth type "client" in the same store.
func badRecords(t *testing.T, dir string) map[string]struct {
	data []byte
	want error
} {
	t.Helper()
	good, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	swapped, err := os.ReadFile(filepath.Join(dir, "client.age"))
	require.NoError(t, err)
	foreign, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	foreignRec, err := sealFor(foreign, "server")
	require.NoError(t, err)
	return map[string]struct {
		data []byte
		want error
	}{
		"empty":     {nil, sessionstore.ErrTampered},
		"truncated": {good[:len(good)/2], sessionstore.ErrTampered},
		"bit flip":  {flipByte(good, len(good)-3), sessionstore.ErrTampered},
		"garbage":   {[]byte("{\"access_token\":\"plain json is not a record\"}"), sessionstore.ErrTampered},
		"swapped":   {swapped, sessionstore.ErrTampered},
		"wrong key": {foreignRec, sessionstore.ErrWrongKey},
		"oversized": {bytes.Repeat([]byte("age-encryption.org/v1\n"), 3<<20/22), sessionstore.ErrTampered},
	}
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func TestBadRecordsGetSentinelAndLoseNothing(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		w := openStore(t, dir, key, m.opts...)
		require.NoError(t, w.Set(ctx, "server", sampleAuth()))
		require.NoError(t, w.Set(ctx, "client", sessionstore.AuthObject{AccessToken: "client-SECRET"}))
		path := filepath.Join(dir, "server.age")
		for name, bad := range badRecords(t, dir) {
			t.Run(name, func(t *testing.T) {
				require.NoError(t, os.WriteFile(path, bad.data, 0o600))
				s := openStore(t, dir, key, m.opts...)
				_, err := s.Get(ctx, "server")
				assert.ErrorIs(t, err, bad.want)
				assert.ErrorContains(t, err, path, "the error names the file")
				assertNoSecret(t, err)

				_, err = s.Update(ctx, "server", increment)
				assert.ErrorIs(t, err, bad.want, "Update returns the error")
				after, rerr := os.ReadFile(path)
				require.NoError(t, rerr)
				assert.Equal(t, string(bad.data), string(after), "a failed read or update leaves the file as it was")

				if errors.Is(bad.want, sessionstore.ErrWrongKey) {
					// Well-formed, sealed to a key this Store lacks: Set
					// refuses and changes nothing; Delete still removes it.
					err := s.Set(ctx, "server", sampleAuth())
					assert.ErrorIs(t, err, sessionstore.ErrWrongKey, "Set over a foreign-key record")
					after, rerr := os.ReadFile(path)
					require.NoError(t, rerr)
					assert.Equal(t, string(bad.data), string(after), "a refused Set leaves the file as it was")
					require.NoError(t, s.Delete(ctx, "server"))
				}
				// Set replaces what cannot be opened.
				require.NoError(t, s.Set(ctx, "server", sampleAuth()))
				got, err := s.Get(ctx, "server")
				require.NoError(t, err)
				assert.True(t, got.Equal(sampleAuth()), "the session reads back")

				// Delete removes it too.
				require.NoError(t, os.WriteFile(path, bad.data, 0o600))
				require.NoError(t, s.Delete(ctx, "server"))
				_, err = os.Lstat(path)
				assert.ErrorIs(t, err, fs.ErrNotExist, "Delete removes a record that does not open")
			})
		}
	})
}

func TestForgedWithPublicRecipientIsTampered(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	s := openStore(t, dir, key)
	// The attacker knows the public key (it is in the key file's comment
	// and in every backup listing) and makes a well-formed record with a
	// MAC under a key of their own.
	attacker, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	attacker, err = attacker.WithRecipients(s.Keyring().Recipient())
	require.NoError(t, err)
	ct, err := envelope.Seal(attacker, &envelope.Record{AuthType: "server", Seq: 1 << 62, Written: time.Now(), Auth: []byte(`{"access_token":"attacker"}`)})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.age"), ct, 0o600))
	_, err = s.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
}

func TestInvalidAuthTypes(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	for name, authType := range map[string]string{
		"empty":          "",
		"too long":       strings.Repeat("a", 201),
		"stem too long":  strings.Repeat("/", 67), // 67 bytes, 201 escaped
		"NUL":            "a\x00b",
		"invalid UTF-8":  "a\xffb",
		"long multibyte": strings.Repeat("é", 34), // 68 bytes, 204 escaped
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Get(ctx, authType)
			assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType)
			assert.ErrorIs(t, s.Set(ctx, authType, sampleAuth()), sessionstore.ErrInvalidAuthType)
			_, err = s.Update(ctx, authType, increment)
			assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType)
			assert.ErrorIs(t, s.Delete(ctx, authType), sessionstore.ErrInvalidAuthType)
		})
	}
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, des, "no file was made for an invalid name")

	ok := strings.Repeat("a", 200)
	assert.NoError(t, s.Set(ctx, ok, sampleAuth()), "200 plain bytes are allowed")
}

func TestHostileNamesStayInsideTheDirectory(t *testing.T) {
	ctx := ctxT(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s := openStore(t, dir, newKeyFile(t, false))
	names := []string{"../escape", "/etc/passwd", `..\win`, "a/b", ".", "..", ".hidden", ".server.tmp-0",
		"Server", "server", "app:12345", "user@example.com", "C:\\x", "%2e", "name.lock", "x.age", "ünï", " sp "}
	for i, n := range names {
		require.NoError(t, s.Set(ctx, n, sessionstore.AuthObject{AccessToken: fmt.Sprint(i)}), n)
	}
	for i, n := range names {
		got, err := s.Get(ctx, n)
		require.NoError(t, err, n)
		assert.Equal(t, fmt.Sprint(i), got.AccessToken, "%q reads back its own record", n)
	}
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	var top []string
	for _, e := range entries {
		top = append(top, e.Name())
	}
	assert.Equal(t, []string{"store"}, top, "nothing was written outside the store directory")

	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, f := range files {
		assert.False(t, strings.HasPrefix(f.Name(), "."), "no record looks like a temp or hidden file: %s", f.Name())
		assert.Equal(t, strings.ToLower(f.Name()), f.Name(), "stems are lowercase so case-insensitive systems never collide: %s", f.Name())
	}

	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, names, list, "List decodes every name back")
}

func TestStemEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"server":           "server",
		"app:12345":        "app%3a12345",
		"user@example.com": "user%40example.com",
		"Server":           "%53erver",
		".hidden":          "%2ehidden",
		"a.b":              "a.b",
		"../x":             "%2e.%2fx",
	} {
		got, err := filestore.StemOf(in)
		require.NoError(t, err)
		assert.Equal(t, want, got, in)
		back, ok := filestore.NameOf(got)
		assert.True(t, ok)
		assert.Equal(t, in, back)
	}
	for _, foreign := range []string{"%61", "%2", "%zz", ".x", "%2E", "A"} {
		_, ok := filestore.NameOf(foreign)
		assert.False(t, ok, "%q is not a stem this store writes", foreign)
	}
}

func TestListSkipsForeignFiles(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "b", sampleAuth()))
	require.NoError(t, s.Set(ctx, "a", sampleAuth()))
	for _, f := range []string{"README", "UPPER.age", ".a.tmp-0", "%zz.age"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o600))
	}
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, list)
}

func TestSequenceNumbersAndRollback(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		path := filepath.Join(dir, "server.age")
		a := openStore(t, dir, key, m.opts...)
		require.NoError(t, a.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
		v1, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, a.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))

		reader := openStore(t, dir, key, m.opts...)
		got, err := reader.Get(ctx, "server")
		require.NoError(t, err)
		require.Equal(t, "v2", got.AccessToken)

		// Someone puts the older record back.
		require.NoError(t, os.WriteFile(path, v1, 0o600))
		waitFor(t, "the rollback to be seen", func() bool {
			_, err = reader.Get(ctx, "server")
			return err != nil
		})
		assert.ErrorIs(t, err, sessionstore.ErrRollback)
		assert.ErrorContains(t, err, path)
		_, err = reader.Update(ctx, "server", increment)
		assert.ErrorIs(t, err, sessionstore.ErrRollback)

		// Delete then Set, from another Store, is not a rollback.
		require.NoError(t, a.Delete(ctx, "server"))
		other := openStore(t, dir, key, m.opts...)
		require.NoError(t, other.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v3"}))
		waitFor(t, "v3 to be seen", func() bool {
			got, err = reader.Get(ctx, "server")
			return err == nil && got.AccessToken == "v3"
		})
		assert.NoError(t, err)
	})
}

func TestLeftoverTempFileRemovedByNextWrite(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	tmp := filepath.Join(dir, ".server.tmp-0")
	require.NoError(t, os.WriteFile(tmp, []byte("half a record from a crashed writer"), 0o600))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	assert.NoFileExists(t, tmp)
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")
}

func TestFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes")
	}
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "new", "store")
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	for path, want := range map[string]os.FileMode{
		dir:                               0o700,
		filepath.Join(dir, "server.age"):  0o600,
		filepath.Join(dir, "server.lock"): 0o600,
	} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, want, fi.Mode().Perm(), path)
	}
}

func TestInsecurePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes")
	}
	key := newKeyFile(t, false)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := filestore.Open(dir, filestore.WithKeyFile(key))
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.ErrorContains(t, err, dir)

	require.NoError(t, os.Chmod(dir, 0o700))
	require.NoError(t, os.Chmod(key, 0o644))
	_, err = filestore.Open(dir, filestore.WithKeyFile(key))
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.ErrorContains(t, err, key)
	assertNoSecret(t, err)
}

func TestSymlinkInPlaceOfRecordIsNeverFollowed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		s := openStore(t, dir, key, m.opts...)
		require.NoError(t, s.Set(ctx, "client", sampleAuth()))
		target := filepath.Join(t.TempDir(), "target")
		require.NoError(t, os.WriteFile(target, []byte("precious"), 0o600))
		// A valid record behind the link: following it would "work".
		data, err := os.ReadFile(filepath.Join(dir, "client.age"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(target, data, 0o600))
		link := filepath.Join(dir, "server.age")
		require.NoError(t, os.Symlink(target, link))

		_, err = s.Get(ctx, "server")
		assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
		assert.ErrorContains(t, err, link)
		assert.Error(t, s.Set(ctx, "server", sampleAuth()), "Set refuses to replace a symlink")
		after, err := os.ReadFile(target)
		require.NoError(t, err)
		assert.Equal(t, data, after, "the symlink's target is untouched")
		fi, err := os.Lstat(link)
		require.NoError(t, err)
		assert.NotZero(t, fi.Mode()&os.ModeSymlink, "the link is left as it was")
	})
}

func TestClosedStore(t *testing.T) {
	ctx := ctxT(t)
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is fine")
	_, err := s.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrClosed)
	assert.ErrorIs(t, s.Set(ctx, "server", sampleAuth()), sessionstore.ErrClosed)
	_, err = s.Update(ctx, "server", increment)
	assert.ErrorIs(t, err, sessionstore.ErrClosed)
	assert.ErrorIs(t, s.Delete(ctx, "server"), sessionstore.ErrClosed)
	_, err = s.List(ctx)
	assert.ErrorIs(t, err, sessionstore.ErrClosed)
}

func TestLockHonoursContext(t *testing.T) {
	ctx := ctxT(t)
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	entered, release := make(chan struct{}), make(chan struct{})
	go s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		close(entered)
		<-release
		return cur, nil
	})
	<-entered
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := s.Set(short, "server", sampleAuth())
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
}

func TestOpenWithoutKey(t *testing.T) {
	t.Setenv(crypto.KeyFileEnv, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	_, err := filestore.Open(t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rekey -init")

	key := newKeyFile(t, false)
	t.Setenv(crypto.KeyFileEnv, key)
	s, err := filestore.Open(t.TempDir())
	require.NoError(t, err)
	s.Close()

	t.Setenv(crypto.KeyFileEnv, "")
	t.Setenv("CREDENTIALS_DIRECTORY", filepath.Dir(key))
	require.NoError(t, os.Rename(key, filepath.Join(filepath.Dir(key), "sessionstore.key")))
	s, err = filestore.Open(t.TempDir())
	require.NoError(t, err, "systemd credentials directory")
	s.Close()
}

func TestWithKeyringAndRecipients(t *testing.T) {
	ctx := ctxT(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	breakGlass, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	dir := t.TempDir()
	s, err := filestore.Open(dir, filestore.WithKeyring(k), filestore.WithRecipients(breakGlass.Recipient()))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	// The break-glass key alone opens the record (its MAC does not verify
	// under it, by design: it is a reader, not a writer).
	data, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	_, _, err = envelope.Open(breakGlass, data, "", "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
	assert.NotErrorIs(t, err, sessionstore.ErrWrongKey, "the break-glass identity decrypts it")
}

// Update writes nothing when fn returns a value Equal to cur: the record
// file is the same file, byte for byte, so a process that just refreshed
// is never overwritten by one that found its token.
func TestUpdateEqualWritesNothing(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	a := sampleAuth()
	a.Extra = map[string]any{"n": 1.0}
	require.NoError(t, s.Set(ctx, "server", a))
	path := filepath.Join(dir, "server.age")
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	fiBefore, err := os.Stat(path)
	require.NoError(t, err)

	got, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		return cur.Clone(), nil
	})
	require.NoError(t, err)
	assert.True(t, a.Equal(got))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	fiAfter, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "not rewritten")
	assert.True(t, os.SameFile(fiBefore, fiAfter), "not replaced by a rename")

	_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		cur.Scope = "changed"
		return cur, nil
	})
	require.NoError(t, err)
	after, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.NotEqual(t, before, after, "a changed value is written")
}

// Open on a regular file says it is not a directory: not a permissions
// problem.
func TestOpenOnAFileIsNotAPermissionError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := filestore.Open(file, filestore.WithKeyFile(newKeyFile(t, false)))
	require.Error(t, err)
	assert.ErrorContains(t, err, "is not a directory")
	assert.NotErrorIs(t, err, sessionstore.ErrInsecurePermissions)
}
