package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// mainEnv makes the test binary run main with the arguments that follow
// it on the command line: the program itself, as a subprocess of a test.
const mainEnv = "FLEET_TEST_MAIN"

// The demo re-executes its binary as etcd members and hosts; under test
// that binary is the test binary, so TestMain plays them when asked to,
// and the whole program under mainEnv.
func TestMain(m *testing.M) {
	maybeRunMember()
	if id := os.Getenv(workerEnv); id != "" {
		if err := worker(id, os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(mainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-member etcd cluster and 4 hosts for several seconds; go run ./examples/fleet shows the same")
	}
	var out bytes.Buffer
	err := run(&out)
	t.Log("\n" + out.String())
	require.NoError(t, err)
	assert.Contains(t, out.String(), "4 hosts started on an expired token: 1 refresh at the provider, 1 distinct access token(s)")
	assert.Contains(t, out.String(), "invalid_grant (reused token)   0")
	assert.Contains(t, out.String(), `first line "age-encryption.org/v1"`)
	assert.Contains(t, out.String(), "OK: no refresh token was used twice")
}

// TestServe runs "fleet -serve" as a subprocess: it prints an -etcd URL
// on which a client can put and get a key, and on SIGINT it stops etcd,
// removes its data and exits 0, in bounded time.
func TestServe(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGINT cannot be sent to a process on Windows")
	}
	cmd := exec.Command(os.Args[0], "-serve")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	// What it prints, line by line, until it says it serves.
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var printed []string
	endpointRE := regexp.MustCompile(`^  etcd +-etcd (http://127\.0\.0\.1:[0-9]+)$`)
	dataRE := regexp.MustCompile(`^  data +(\S+) \(removed at exit\)$`)
	var endpoint, dataDir string
	timeout := time.After(60 * time.Second)
	for len(printed) == 0 || !strings.HasPrefix(printed[len(printed)-1], "Serving until interrupted") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("fleet -serve ended before it served:\n%s\nstderr:\n%s", strings.Join(printed, "\n"), stderr.String())
			}
			printed = append(printed, l)
			if m := endpointRE.FindStringSubmatch(l); m != nil {
				endpoint = m[1]
			}
			if m := dataRE.FindStringSubmatch(l); m != nil {
				dataDir = m[1]
			}
		case <-timeout:
			t.Fatalf("fleet -serve did not serve within 60 s:\n%s", strings.Join(printed, "\n"))
		}
	}
	t.Log("\n" + strings.Join(printed, "\n"))
	require.NotEmpty(t, endpoint, "no -etcd URL printed")
	require.NotEmpty(t, dataDir, "no data directory printed")
	assert.DirExists(t, dataDir)
	all := strings.Join(printed, "\n")
	e := "-etcd " + endpoint + " -prefix " + servePrefix
	assert.Contains(t, all, "\n  rekey -stage\n")
	assert.Contains(t, all, "\n  rekey -retire "+e+"\n")
	assert.Contains(t, all, "\n  sessionstore ls "+e+"\n")

	// A client of the URL it printed can write and read.
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.Put(ctx, servePrefix+"/probe", "hello")
	require.NoError(t, err)
	resp, err := client.Get(ctx, servePrefix+"/probe")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, "hello", string(resp.Kvs[0].Value))
	client.Close()

	// SIGINT: a clean stop, its data removed, in bounded time.
	go func() {
		for l := range lines {
			printed = append(printed, l)
		}
		exited <- cmd.Wait()
	}()
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		require.NoError(t, err, "fleet -serve did not exit 0 after SIGINT; stderr:\n%s", stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("fleet -serve did not exit within 20 s of SIGINT")
	}
	assert.Contains(t, printed[len(printed)-1], "etcd stopped;")
	assert.NoDirExists(t, filepath.Dir(dataDir)) // the data, and the demo key beside it
	assert.Empty(t, stderr.String())
}
