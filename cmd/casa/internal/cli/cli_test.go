package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil"
)

func TestParseDataSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "app.db")
	require.NoError(t, os.WriteFile(file, nil, 0o644))

	for _, tc := range []struct {
		in     string
		driver string
		dsn    string
		dollar bool
	}{
		{file, "sqlite", "file:" + file + "?_pragma=busy_timeout(5000)", false},
		{"sqlite://" + file, "sqlite", "file:" + file + "?_pragma=busy_timeout(5000)", false},
		{"sqlite://" + file + "?_pragma=journal_mode(WAL)", "sqlite", "file:" + file + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)", false},
		{"postgres://u:p@db.example:5433/app?sslmode=disable", "pgx", "postgres://u:p@db.example:5433/app?sslmode=disable", true},
		{"postgresql://u@db.example/app", "pgx", "postgresql://u@db.example/app", true},
		{"mysql://u:p@db.example:3307/app", "mysql", "u:p@tcp(db.example:3307)/app", false},
		{"mysql://u:p@db.example/app", "mysql", "u:p@tcp(db.example:3306)/app", false},
		{"mysql://u:p%40ss@[::1]/app?parseTime=true&tls=skip-verify", "mysql", "u:p@ss@tcp([::1]:3306)/app?parseTime=true&tls=skip-verify", false},
		{"mariadb://u@db.example/app", "mysql", "u@tcp(db.example:3306)/app", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDataSource(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.driver, got.driver)
			require.Equal(t, tc.dsn, got.dsn)
			require.Equal(t, tc.dollar, got.dollar)
			require.NotContains(t, got.shown, ":p@", "shown without the password")
			if got.driver == "mysql" {
				cfg, err := mysql.ParseDSN(got.dsn)
				require.NoError(t, err, "go-sql-driver parses the translation")
				require.Equal(t, "tcp", cfg.Net)
			}
		})
	}

	for _, in := range []string{
		"", filepath.Join(dir, "missing.db"), dir, "sqlite://", "oracle://x", "postgres://u:pw@h:port/db",
		"mysql://u:pw@h", "mysql://u:pw@/db", "mysql://u:pw@h/a/b", "mysql://u:pw@h/db?tls=nonsense-config",
	} {
		t.Run("bad "+in, func(t *testing.T) {
			_, err := parseDataSource(in)
			require.Error(t, err)
			require.Equal(t, ExitUsage, exitCode(err))
			require.NotContains(t, err.Error(), "pw")
		})
	}
}

func TestCheckStoreRoot(t *testing.T) {
	t.Parallel()
	mk := func(files ...string) string {
		d := t.TempDir()
		for _, f := range files {
			p := filepath.Join(d, f)
			if strings.HasSuffix(f, "/") {
				require.NoError(t, os.MkdirAll(p, 0o755))
				continue
			}
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, nil, 0o644))
		}
		return d
	}
	for name, dir := range map[string]string{
		"missing":       filepath.Join(t.TempDir(), "new"),
		"empty":         mk(),
		"marker only":   mk(".tmp/"),
		"fsstore":       mk(".tmp/", "cas/ab/ab00", "cas/0f/"),
		"with legacy":   mk(".tmp/", "legacy/uuid", "6b1a0f5e", "thumbnails/ab_100.jpg"),
		"temp in .tmp":  mk(".tmp/put-123", "cas/"),
		"legacy unicod": mk(".tmp/", "scans/ü.pdf"),
	} {
		require.NoError(t, checkStoreRoot(dir), name)
	}
	for name, dir := range map[string]string{
		"app data dir":    mk("inventory.db", "blobs/.tmp/", "thumbnails/"),
		"no marker":       mk("cas/ab/x"),
		"marker is file":  mk(".tmp"),
		"junk in cas":     mk(".tmp/", "cas/xyz/"),
		"file in cas":     mk(".tmp/", "cas/ab00"),
		"uppercase shard": mk(".tmp/", "cas/AB/"),
		"cas is a file":   mk(".tmp/", "cas"),
		"dot entry":       mk(".tmp/", ".git/"),
		"upper CAS":       mk(".tmp/", "CAS/x"),
		"backslash":       mk(".tmp/", `a\b`),
	} {
		err := checkStoreRoot(dir)
		require.Error(t, err, name)
		require.Equal(t, ExitUsage, exitCode(err), name)
		require.Contains(t, err.Error(), "not a casa store root", name)
	}
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		pos  []string
		o    string
		json bool
	}{
		{[]string{"a", "-o", "x", "b"}, []string{"a", "b"}, "x", false},
		{[]string{"-json", "a"}, []string{"a"}, "", true},
		{[]string{"a", "--", "-o", "x"}, []string{"a", "-o", "x"}, "", false},
		{[]string{"-o", "x", "--", "-json"}, []string{"-json"}, "x", false},
		{[]string{"-", "-json"}, []string{"-"}, "", true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		o := fs.String("o", "", "")
		j := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.pos, pos, tc.args)
		require.Equal(t, tc.o, *o, tc.args)
		require.Equal(t, tc.json, *j, tc.args)
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a | b c", oneLine("a\r\nb   c\n"))
	require.Equal(t, "x", oneLine(" x "))
}

// panicWriter panics on Write, standing in for any bug below Main.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("boom\ngoroutine 1 [running]:") }

// TestMainRecovers: a panic under Main is one line and exit code 1.
func TestMainRecovers(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := Main(t.Context(), []string{"help"}, IO{Stdout: panicWriter{}, Stderr: &stderr})
	require.Equal(t, ExitFailure, code)
	require.Equal(t, "casa: internal error: boom | goroutine 1 [running]:\n", stderr.String())
}

// TestProgressBar: on a terminal, verify draws a progress bar (the
// progressbar library) instead of plain lines.
func TestProgressBar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(src, testutil.Bytes(1, 100), 0o644))
	var out, errOut bytes.Buffer
	sys := IO{Stdout: &out, Stderr: &errOut}
	require.Equal(t, ExitOK, Main(t.Context(), []string{"put", "-dir", dir, src}, sys))

	errOut.Reset()
	sys.StderrTerminal = true
	require.Equal(t, ExitOK, Main(t.Context(), []string{"verify", "-dir", dir}, sys))
	require.Contains(t, errOut.String(), "100%", "a bar, drawn to its end")
	require.Contains(t, errOut.String(), "1/1")

	errOut.Reset()
	sys.StderrTerminal = false
	require.Equal(t, ExitOK, Main(t.Context(), []string{"verify", "-dir", dir}, sys))
	require.NotContains(t, errOut.String(), "100%")
	require.Contains(t, errOut.String(), "casa verify: 1 blobs, 100 B in")
}
