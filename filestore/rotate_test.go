package filestore_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

func init() {
	// rotator: rotate, printing each step, and block forever at the step
	// named in SS_NAME (after SS_N records, for "resealed") so that the
	// parent can kill it exactly there.
	children["rotator"] = func(ctx context.Context, _ *filestore.Store, c childSpec) error {
		_, err := filestore.Rotate(ctx, c.key, []string{c.dir}, filestore.RotateOptions{
			Progress: func(ev filestore.RotateEvent) {
				if ev.Step == c.name && (ev.Step != "resealed" || ev.Done == c.n) {
					fmt.Println("at", ev.Step, ev.Done)
					select {} // wait for SIGKILL
				}
			},
		})
		return err
	}
	// worker: Get and Update the shared counter until stdin closes, then
	// report how many increments it made.
	children["worker"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		stop := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
		fmt.Println("ready")
		n := 0
		for {
			select {
			case <-stop:
				fmt.Println("done", n)
				return nil
			default:
			}
			if _, err := s.Get(ctx, c.name); err != nil {
				return fmt.Errorf("get after %d increments: %w", n, err)
			}
			if _, err := s.Update(ctx, c.name, increment); err != nil {
				return fmt.Errorf("update after %d increments: %w", n, err)
			}
			n++
		}
	}
}

// seedStore writes n records (value "i" under "rec-i") with the key file.
func seedStore(t *testing.T, dir, key string, n int) {
	t.Helper()
	s := openStore(t, dir, key, filestore.WithoutWatcher())
	for i := range n {
		require.NoError(t, s.Set(ctxT(t), "rec-"+strconv.Itoa(i), sessionstore.AuthObject{AccessToken: strconv.Itoa(i)}))
	}
	s.Close()
}

// assertAllUnderPrimary checks that every record opens with the key file's
// primary alone and holds its value, and that the key file holds want
// identities.
func assertAllUnderPrimary(t *testing.T, dir, key string, n, want int) {
	t.Helper()
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	assert.Equal(t, want, ring.Len(), "identities in the key file")
	statuses, err := filestore.Check(ctxT(t), key, []string{dir}, filestore.CheckOptions{Workers: 2})
	require.NoError(t, err)
	require.Len(t, statuses, n)
	for _, st := range statuses {
		assert.NoError(t, st.Err)
		assert.Equal(t, 0, st.Key, "%s is under the primary", st.AuthType)
	}
	s := openStore(t, dir, key, filestore.WithoutWatcher())
	for i := range n {
		got, err := s.Get(ctxT(t), "rec-"+strconv.Itoa(i))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(i), got.AccessToken)
	}
}

func TestRotateResealsAndRetires(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 20)
	before, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	var steps []string
	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Workers: 2,
		Progress: func(ev filestore.RotateEvent) {
			if len(steps) == 0 || steps[len(steps)-1] != ev.Step {
				steps = append(steps, ev.Step)
			}
		}})
	require.NoError(t, err)
	assert.Equal(t, []string{"key-written", "resealed", "verified", "retired"}, steps)
	assert.NotEqual(t, before.PublicKey(0), rep.NewPublicKey)
	assert.Equal(t, 1, rep.Retired)
	assert.Len(t, rep.Records, 20)
	for _, r := range rep.Records {
		assert.True(t, r.Resealed)
	}
	assertAllUnderPrimary(t, dir, key, 20, 1)
	if fi, err := os.Stat(key); assert.NoError(t, err) && os.PathSeparator == '/' {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
}

func TestRotateKeepOldAndSwitchKinds(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 5)
	_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Kind: crypto.PostQuantum, KeepOld: true})
	require.NoError(t, err)
	assertAllUnderPrimary(t, dir, key, 5, 2)
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	assert.True(t, ring.PostQuantum())

	// And back to X25519, retiring both older keys.
	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Kind: crypto.X25519})
	require.NoError(t, err)
	assertAllUnderPrimary(t, dir, key, 5, 1)
	ring, err = crypto.LoadKeyring(key)
	require.NoError(t, err)
	assert.False(t, ring.PostQuantum())
}

func TestRotateRecipientsOfOtherKindChangesNothing(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	breakGlass, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(key+crypto.RecipientsSuffix, []byte(breakGlass.PublicKey(0)+"\n"), 0o600))
	seedStore(t, dir, key, 3)
	keyBefore, err := os.ReadFile(key)
	require.NoError(t, err)
	recBefore, err := os.ReadFile(filepath.Join(dir, "rec-0.age"))
	require.NoError(t, err)

	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Kind: crypto.PostQuantum})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot mix")
	assert.Contains(t, err.Error(), key+crypto.RecipientsSuffix)
	keyAfter, err := os.ReadFile(key)
	require.NoError(t, err)
	assert.Equal(t, keyBefore, keyAfter, "the key file is unchanged")
	recAfter, err := os.ReadFile(filepath.Join(dir, "rec-0.age"))
	require.NoError(t, err)
	assert.Equal(t, recBefore, recAfter, "no record was touched")

	// A classic rotation keeps the break-glass recipient on every record.
	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, "rec-0.age"))
	require.NoError(t, err)
	_, _, err = envelope.Open(breakGlass, data, "", "rec-0")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "the break-glass key decrypts it (its MAC is the writer's, by design)")
}

// Before it changes anything, a rotation checks that every record opens:
// with a foreign or forged record in the directory it fails, names them,
// says what to do, and leaves the key file byte for byte as it was, however
// often it is retried.
func TestRotateRefusesWhenARecordDoesNotOpen(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 4)
	// One record under a key nobody has, one forged with the public key.
	foreign, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := sealFor(foreign, "lost")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lost.age"), ct, 0o600))
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	forger, err := foreign.WithRecipients(ring.Recipient())
	require.NoError(t, err)
	forged, err := sealFor(forger, "forged")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "forged.age"), forged, 0o600))

	keyBefore, err := os.ReadFile(key)
	require.NoError(t, err)
	var rep *filestore.RotateReport
	for range 3 {
		rep, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
		require.ErrorIs(t, err, filestore.ErrRotationIncomplete)
		assert.Contains(t, err.Error(), filepath.Join(dir, "lost.age"))
		assert.Contains(t, err.Error(), filepath.Join(dir, "forged.age"))
		assert.Contains(t, err.Error(), "nothing changed")
		assert.Contains(t, err.Error(), "move files")
		keyAfter, err := os.ReadFile(key)
		require.NoError(t, err)
		assert.Equal(t, keyBefore, keyAfter, "the key file is byte for byte unchanged")
	}
	forgedAfter, err := os.ReadFile(filepath.Join(dir, "forged.age"))
	require.NoError(t, err)
	assert.Equal(t, forged, forgedAfter, "a forged record is reported, never resealed")
	byName := map[string]filestore.RecordStatus{}
	for _, r := range rep.Records {
		byName[r.AuthType] = r
	}
	assert.ErrorIs(t, byName["lost"].Err, sessionstore.ErrWrongKey)
	assert.ErrorIs(t, byName["forged"].Err, sessionstore.ErrTampered)
	assert.NoError(t, byName["rec-0"].Err)
	assert.Equal(t, 0, byName["rec-0"].Key)
}

func TestRotateDryRunChangesNothing(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 3)
	keyBefore, err := os.ReadFile(key)
	require.NoError(t, err)
	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{DryRun: true})
	require.NoError(t, err)
	assert.Len(t, rep.Records, 3)
	keyAfter, err := os.ReadFile(key)
	require.NoError(t, err)
	assert.Equal(t, keyBefore, keyAfter)

	foreign, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := sealFor(foreign, "lost")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lost.age"), ct, 0o600))
	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{DryRun: true})
	assert.ErrorIs(t, err, filestore.ErrRotationIncomplete, "dry run fails where the rotation would")
}

// Killing a rotation at any step leaves every record readable with the key
// file on disk, and running it again completes the rotation.
func TestRotateKilledAtEachStepThenRerun(t *testing.T) {
	for _, point := range []struct {
		step string
		n    int
	}{{"key-written", 0}, {"resealed", 1}, {"resealed", 15}, {"verified", 0}} {
		t.Run(fmt.Sprintf("%s-%d", point.step, point.n), func(t *testing.T) {
			ctx := ctxT(t)
			dir, key := t.TempDir(), newKeyFile(t, false)
			seedStore(t, dir, key, 30)
			cmd, sc := startChild(t, ctx, childSpec{role: "rotator", dir: dir, key: key, name: point.step, n: point.n})
			expectLine(t, sc, "at")
			require.NoError(t, cmd.Process.Kill())
			cmd.Wait()

			statuses, err := filestore.Check(ctx, key, []string{dir}, filestore.CheckOptions{})
			require.NoError(t, err)
			for _, st := range statuses {
				assert.NoError(t, st.Err, "after the kill every record opens with the key file on disk")
			}
			_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
			require.NoError(t, err, "the rerun completes")
			assertAllUnderPrimary(t, dir, key, 30, 1)
		})
	}
}

// Three processes Get and Update in a loop while the key rotates three
// times: no error anywhere, no lost increment, every record under the
// final primary, one identity left.
func TestRotateWhileProcessesRun(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 10)
	s := openStore(t, dir, key)
	require.NoError(t, s.Set(ctx, "shared", sessionstore.AuthObject{AccessToken: "0"}))

	procs := startChildren(t, ctx, 3, childSpec{role: "worker", dir: dir, key: key, name: "shared", mode: "watch"})
	for i := range 3 {
		kind := []crypto.Kind{crypto.SameKind, crypto.PostQuantum, crypto.X25519}[i]
		_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Kind: kind})
		require.NoError(t, err, "rotation %d", i)
	}
	total := 0
	for _, p := range procs {
		require.NoError(t, p.stdin.Close())
		f := expectLine(t, p.out, "done")
		n, err := strconv.Atoi(f[1])
		require.NoError(t, err)
		total += n
		assert.NoError(t, p.cmd.Wait(), "the worker saw no error")
		assert.Positive(t, n, "each worker made progress during the rotations")
	}
	got, err := s.Get(ctx, "shared")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(total), got.AccessToken, "no increment was lost")
	t.Logf("3 rotations while 3 processes made %d increments", total)

	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	assert.Equal(t, 1, ring.Len())
	statuses, err := filestore.Check(ctx, key, []string{dir}, filestore.CheckOptions{Workers: 2})
	require.NoError(t, err)
	assert.Len(t, statuses, 11)
	for _, st := range statuses {
		assert.NoError(t, st.Err)
		assert.Equal(t, 0, st.Key, st.AuthType)
	}
}

// A writer that read the key file before the rotation began, and writes a
// brand new record only after the new key file is in place, still has its
// record resealed: the rotation waits for its lock.
func TestRotateWaitsForWriterThatStartedBefore(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 2)
	w := openStore(t, dir, key, filestore.WithoutWatcher())

	keyWritten, sealed := make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := w.Update(ctx, "late", func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error) {
			<-keyWritten // the writer has its keys; the rotation writes the new key file now
			return sessionstore.AuthObject{AccessToken: "late"}, nil
		})
		sealed <- err
	}()
	waitFor(t, "the writer's lock file", func() bool {
		_, err := os.Stat(filepath.Join(dir, "late.lock"))
		return err == nil
	})
	_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{
		Progress: func(ev filestore.RotateEvent) {
			if ev.Step == "key-written" {
				close(keyWritten)
			}
		},
	})
	require.NoError(t, err)
	require.NoError(t, <-sealed)

	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	require.Equal(t, 1, ring.Len(), "the old key is retired")
	data, err := os.ReadFile(filepath.Join(dir, "late.age"))
	require.NoError(t, err)
	_, _, err = envelope.Open(ring, data, "", "late")
	assert.NoError(t, err, "the late writer's record opens with the new key")
}

// A rotation killed after step 1 leaves its new primary first, marked as
// a rotation in progress, and maybe a temp key file holding secret keys.
// The rerun reuses that primary (no third identity) and removes the temp
// file; so does the next Open.
func TestRotateRerunAfterCrashReusesItsKey(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 3)
	old, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	id, err := crypto.GenerateIdentity(false)
	require.NoError(t, err)
	crashed, err := old.Rotate(id)
	require.NoError(t, err)
	require.NoError(t, crypto.ReplaceKeyFile(key, crashed.WithRotating(true)))
	tmp := crypto.TempKeyFile(key)
	require.NoError(t, os.WriteFile(tmp, crashed.MarshalKeyFile(time.Now()), 0o600))

	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	assert.True(t, rep.Resumed)
	after, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	assert.Equal(t, 1, after.Len())
	assert.Equal(t, crashed.PublicKey(0), after.PublicKey(0), "the crashed run's new key is the primary")
	assert.False(t, after.Rotating(), "the finished rotation is no longer marked")
	assert.NoFileExists(t, tmp, "the leftover temp key file is removed")
	statuses, err := filestore.Check(ctx, key, []string{dir}, filestore.CheckOptions{})
	require.NoError(t, err)
	for _, st := range statuses {
		assert.Equal(t, 0, st.Key, st.AuthType)
	}

	// A normal rotation afterwards makes a new key again.
	rep, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	assert.False(t, rep.Resumed)
	assert.NotEqual(t, crashed.PublicKey(0), rep.NewPublicKey)

	// The next Open removes a leftover temp key file too.
	require.NoError(t, os.WriteFile(tmp, crashed.MarshalKeyFile(time.Now()), 0o600))
	openStore(t, dir, key)
	assert.NoFileExists(t, tmp, "Open removes the leftover temp key file")
}

// A routine rotation keeps the primary's kind: a nightly rekey never turns
// a post-quantum key back into X25519. Only an explicit Kind switches, and
// the report tells the kinds apart.
func TestRoutineRotationKeepsTheKind(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, true)
	seedStore(t, dir, key, 3)
	for range 2 {
		rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
		require.NoError(t, err)
		assert.Equal(t, crypto.PostQuantum, rep.Kind)
		assert.Equal(t, crypto.PostQuantum, rep.OldKind)
		ring, err := crypto.LoadKeyring(key)
		require.NoError(t, err)
		assert.True(t, ring.PostQuantum(), "still post-quantum")
		assert.Equal(t, 1, ring.Len(), "the old key is retired")
	}
	assertAllUnderPrimary(t, dir, key, 3, 1)

	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Kind: crypto.X25519})
	require.NoError(t, err)
	assert.Equal(t, crypto.X25519, rep.Kind)
	assert.Equal(t, crypto.PostQuantum, rep.OldKind)
	rep, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	assert.Equal(t, crypto.X25519, rep.Kind, "and X25519 stays X25519")
	assertAllUnderPrimary(t, dir, key, 3, 1)
}

// crashAfterStep1 runs a rotation to kind and stops it (as a kill would)
// right after step 1 wrote the key file; it returns the rotation's error.
func crashAfterStep1(t *testing.T, key, dir string, kind crypto.Kind) error {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Kind: kind,
		Progress: func(ev filestore.RotateEvent) {
			if ev.Step == "key-written" {
				cancel()
			}
		}})
	return err
}

// A rotation interrupted after step 1 is finished, on the next run, with
// the new primary it put first, whatever its kind: a loop of killed runs
// that alternate kinds never piles up identities. Asking explicitly for
// the other kind meanwhile changes nothing and says to finish first; not
// asking finishes with the interrupted run's key.
func TestRerunAfterCrashReusesItsKeyWhateverTheKind(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 4)

	require.ErrorIs(t, crashAfterStep1(t, key, dir, crypto.PostQuantum), context.Canceled)
	crashed, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	require.True(t, crashed.Rotating())
	require.Equal(t, 2, crashed.Len())
	require.True(t, crashed.PostQuantum())

	for i := range 8 { // killed again and again, alternating kinds
		kind := []crypto.Kind{crypto.X25519, crypto.PostQuantum}[i%2]
		before, err := os.ReadFile(key)
		require.NoError(t, err)
		err = crashAfterStep1(t, key, dir, kind)
		ring, lerr := crypto.LoadKeyring(key)
		require.NoError(t, lerr)
		assert.Equal(t, 2, ring.Len(), "run %d adds no identity", i)
		assert.Equal(t, crashed.PublicKey(0), ring.PublicKey(0), "run %d keeps the crashed run's primary", i)
		if kind == crypto.X25519 {
			require.Error(t, err)
			assert.NotErrorIs(t, err, context.Canceled, "refused before anything changed")
			assert.Contains(t, err.Error(), "interrupted rotation to a new post-quantum primary")
			assert.Contains(t, err.Error(), "nothing changed")
			after, err := os.ReadFile(key)
			require.NoError(t, err)
			assert.Equal(t, before, after, "the key file is byte for byte unchanged")
		} else {
			assert.ErrorIs(t, err, context.Canceled)
		}
	}

	// Without a kind (as a nightly rekey), the rerun finishes the job.
	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	assert.True(t, rep.Resumed)
	assert.Equal(t, crashed.PublicKey(0), rep.NewPublicKey)
	assert.Equal(t, crypto.PostQuantum, rep.Kind)
	assert.Equal(t, crypto.X25519, rep.OldKind, "the kind of the primary before the interrupted rotation")
	assertAllUnderPrimary(t, dir, key, 4, 1)
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	assert.Equal(t, crashed.PublicKey(0), ring.PublicKey(0))
}
