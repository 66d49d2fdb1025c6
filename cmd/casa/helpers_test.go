package main_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// casaBin is the casa binary TestMain builds, as `go install` would, once
// for the package's tests.
var casaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "casa-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	casaBin = filepath.Join(dir, "casa")
	if out, err := exec.Command("go", "build", "-o", casaBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the built binary in a clean environment: no CASA_* variables
// but those in env, static AWS credentials (any S3 test server accepts
// them), no AWS config files and no instance metadata lookups.
type cli struct {
	t     *testing.T
	env   []string
	dir   string // working directory
	stdin io.Reader
}

func newCLI(t *testing.T, env ...string) *cli {
	t.Helper()
	home := t.TempDir()
	base := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=AKIDCASATEST",
		"AWS_SECRET_ACCESS_KEY=SECRETCASATEST",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
	}
	return &cli{t: t, env: append(base, env...), dir: t.TempDir()}
}

// with returns a copy of c with more environment variables.
func (c *cli) with(env ...string) *cli {
	d := *c
	d.env = append(append([]string(nil), c.env...), env...)
	return &d
}

// run runs casa with args and returns what it did, failing t if it does
// not exit within a minute.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	cmd := exec.CommandContext(c.t.Context(), casaBin, args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	cmd.Stdin = c.stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	done := make(chan error, 1)
	require.NoError(c.t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("casa %q did not exit within a minute; stderr: %s", args, stderr.String())
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// ok runs casa and requires exit code 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	require.Equal(c.t, 0, r.code, "casa %q\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	return r
}

// requireOneLineError requires that r failed with code and a single
// stderr line, no stack trace, that contains every want.
func requireOneLineError(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.NotContains(t, r.stderr, "goroutine")
	require.NotContains(t, r.stderr, "panic")
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "one line of error, got: %q", r.stderr)
	require.True(t, strings.HasPrefix(lines[0], "casa"), "error line %q starts with casa", lines[0])
	for _, w := range want {
		require.Contains(t, lines[0], w)
	}
}

// writeFile writes b to name under dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// openSQLite opens a new SQLite database file for an application's tables
// (busy_timeout: it waits for the casa binary's writes), closed when t
// ends, and returns it and the file's path.
func openSQLite(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, path
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
