package main_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// TestDirRefusal: -dir must be a store root. The example app's data
// directory (inventory.db beside blobs/, the real store root) is refused
// by every command, cleanup included, and left untouched; store roots are
// accepted.
func TestDirRefusal(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	data := t.TempDir()
	writeFile(t, data, "inventory.db", []byte("SQLite format 3\x00"))
	writeFile(t, data, "thumbnails/ab/abcd_200.jpg", []byte("jpeg"))
	blobs := filepath.Join(data, "blobs")
	writeFile(t, blobs, "legacy/6b1a0f5e-0d0e-4c4e-9a57-000000000001", []byte("legacy bytes"))
	require.NoError(t, os.MkdirAll(filepath.Join(blobs, ".tmp"), 0o755))
	db := writeFile(t, t.TempDir(), "app.db", nil)

	for _, args := range [][]string{
		{"ls", "-dir", data},
		{"put", "-dir", data, db},
		{"verify", "-dir", data},
		{"cleanup", "-dir", data, "-db", db, "-table", "t", "-key-column", "k", "-min-age", "0"},
		{"migrate", "-dir", data, "-db", db, "-table", "t", "-key-column", "k"},
	} {
		r := c.run(args...)
		requireOneLineError(t, r, 2, "-dir "+data+" is not a casa store root", "inventory.db", "did you mean -dir "+blobs+"?")
	}
	r := c.with("CASA_DIR=" + data).run("ls")
	requireOneLineError(t, r, 2, "not a casa store root")
	_, err := os.Stat(filepath.Join(data, ".tmp"))
	require.ErrorIs(t, err, os.ErrNotExist, "a refused directory is not made a store")
	_, err = os.Stat(filepath.Join(data, "inventory.db"))
	require.NoError(t, err)

	// The app's real store root is accepted: it lists its legacy object.
	r = c.ok("ls", "-all", "-dir", blobs)
	require.Equal(t, []string{"legacy/6b1a0f5e-0d0e-4c4e-9a57-000000000001 12"}, lines(r.stdout))

	// A -dir that does not exist is an error for the commands that read
	// (a mistyped path is not an empty store), and nothing is created;
	// put makes a new store there.
	missing := filepath.Join(t.TempDir(), "typo")
	for _, cmd := range []string{"ls", "verify"} {
		r = c.run(cmd, "-dir", missing)
		requireOneLineError(t, r, 2, "-dir "+missing+": no such directory")
	}
	_, err = os.Stat(missing)
	require.ErrorIs(t, err, os.ErrNotExist, "a read command creates no directory")
	c.ok("put", "-dir", missing, db)
	require.DirExists(t, filepath.Join(missing, ".tmp"))

	// Other directories that are not store roots, and why.
	plain := t.TempDir()
	writeFile(t, plain, "notes.txt", []byte("x"))
	r = c.run("ls", "-dir", plain)
	requireOneLineError(t, r, 2, "not a casa store root", "notes.txt", "create "+filepath.Join(plain, ".tmp"))

	junkShard := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(junkShard, ".tmp"), 0o755))
	writeFile(t, junkShard, "cas/README", []byte("x"))
	r = c.run("ls", "-dir", junkShard)
	requireOneLineError(t, r, 2, "cas/README is not a shard directory")

	link := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(link, ".tmp"), 0o755))
	require.NoError(t, os.Symlink("/etc", filepath.Join(link, "etc")))
	r = c.run("ls", "-dir", link)
	requireOneLineError(t, r, 2, `"etc" is neither a file nor a directory`)

	file := writeFile(t, t.TempDir(), "file", []byte("x"))
	r = c.run("ls", "-dir", file)
	requireOneLineError(t, r, 2, "is not a directory")

	// Adopting a directory of legacy uploads: create .tmp.
	require.NoError(t, os.Mkdir(filepath.Join(plain, ".tmp"), 0o755))
	r = c.ok("ls", "-all", "-dir", plain)
	require.Equal(t, []string{"notes.txt 1"}, lines(r.stdout))

	// Empty and new directories are store roots (a new one only for the
	// commands that write: the others refuse a path that does not exist).
	c.ok("ls", "-dir", t.TempDir())
	c.ok("put", "-dir", filepath.Join(t.TempDir(), "new"), db)
}

// TestOneLineErrors: bad input gets one line on standard error, the
// documented exit code, and never a stack trace.
func TestOneLineErrors(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	c := newCLI(t)
	dir := t.TempDir()
	c.ok("ls", "-dir", dir)
	db := writeFile(t, t.TempDir(), "app.db", nil)
	notADir := t.TempDir()
	h := cas.SumBytes([]byte("x")).String()
	// An instance-metadata service that refuses: with no credentials, the
	// SDK falls back to it and would log a warning of its own.
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	t.Cleanup(imds.Close)
	noCredentials := []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_EC2_METADATA_DISABLED=false",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL}
	tbl := []string{"-table", "attachments", "-key-column", "storage_key"}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"unknown command", nil, []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"unknown flag", nil, []string{"ls", "-dir", dir, "-bogus"}, 2, []string{"flag provided but not defined: -bogus"}},
		{"bad flag value", nil, []string{"verify", "-dir", dir, "-concurrency", "many"}, 2, []string{"-concurrency"}},
		{"no store", nil, []string{"ls"}, 2, []string{"no store", "CASA_DIR"}},
		{"two stores", []string{"CASA_S3_BUCKET=b"}, []string{"ls", "-dir", dir}, 2, []string{"not both"}},
		{"s3 flag without bucket", nil, []string{"ls", "-s3-region", "eu-west-1"}, 2, []string{"need -s3-bucket"}},
		{"bad path-style variable", []string{"CASA_S3_PATH_STYLE=maybe"}, []string{"ls", "-dir", dir}, 2, []string{"CASA_S3_PATH_STYLE", "true or false"}},
		{"malformed hash", nil, []string{"get", "-dir", dir, "not-a-hash"}, 2, []string{`malformed hash "not-a-hash"`}},
		{"uppercase hash", nil, []string{"stat", "-dir", dir, strings.ToUpper(h)}, 2, []string{"malformed hash"}},
		{"short hash", nil, []string{"verify", "-dir", dir, h[:63]}, 2, []string{"malformed hash"}},
		{"hash with a path", nil, []string{"get", "-dir", dir, "../" + h}, 2, []string{"malformed hash"}},
		{"get two hashes", nil, []string{"get", "-dir", dir, h, h}, 2, []string{"exactly one HASH"}},
		{"get missing blob", nil, []string{"get", "-dir", dir, h}, 4, []string{h, "not found"}},
		{"get -json to stdout", nil, []string{"get", "-dir", dir, h, "-json"}, 2, []string{"-json needs -o"}},
		{"put no files", nil, []string{"put", "-dir", dir}, 2, []string{"at least one FILE"}},
		{"put missing file", nil, []string{"put", "-dir", dir, "/no/such/file"}, 1, []string{"cannot read /no/such/file: no such file or directory"}},
		{"put a directory", nil, []string{"put", "-dir", dir, notADir}, 1, []string{"cannot read " + notADir + ": is a directory"}},
		{"missing bucket", nil, []string{"ls", "-s3-bucket", "no-such-bucket", "-s3-endpoint", srv.URL, "-s3-path-style"}, 1, []string{`S3 bucket "no-such-bucket" does not exist at ` + srv.URL}},
		{"unreachable endpoint", nil, []string{"ls", "-s3-bucket", "b", "-s3-endpoint", "http://127.0.0.1:1", "-s3-path-style"}, 1, []string{`S3 bucket "b"`, "connection refused"}},
		{"no credentials", noCredentials, []string{"ls", "-s3-bucket", srv.Bucket, "-s3-endpoint", srv.URL, "-s3-path-style"}, 1, []string{"get credentials"}},
		{"no database", nil, append([]string{"migrate", "-dir", dir}, tbl...), 2, []string{"no database", "CASA_DB"}},
		{"missing sqlite file", nil, append([]string{"migrate", "-dir", dir, "-db", "/no/such.db"}, tbl...), 2, []string{"/no/such.db: no such SQLite database file"}},
		{"sqlite url without path", nil, append([]string{"migrate", "-dir", dir, "-db", "sqlite://"}, tbl...), 2, []string{"no file path"}},
		{"unknown scheme", nil, append([]string{"migrate", "-dir", dir, "-db", "oracle://x/y"}, tbl...), 2, []string{`unsupported database scheme "oracle"`}},
		{"malformed postgres url", nil, append([]string{"cleanup", "-dir", dir, "-db", "postgres://u:secret@host:notaport/db"}, tbl...), 2, []string{"-db"}},
		{"bad postgres option", nil, append([]string{"cleanup", "-dir", dir, "-db", "postgres://u:secret@127.0.0.1/db?sslmode=sometimes"}, tbl...), 2, []string{"sslmode"}},
		{"mysql without database", nil, append([]string{"migrate", "-dir", dir, "-db", "mysql://u:secret@127.0.0.1"}, tbl...), 2, []string{"mysql://USER:PASSWORD@HOST[:PORT]/DATABASE"}},
		{"bad mysql parameter", nil, append([]string{"migrate", "-dir", dir, "-db", "mysql://u:secret@127.0.0.1/db?parseTime=perhaps"}, tbl...), 2, []string{"-db"}},
		{"unreachable postgres", nil, append([]string{"migrate", "-dir", dir, "-db", "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2"}, tbl...), 1, []string{"database postgres://u:xxxxx@127.0.0.1:1/db"}},
		{"no table", nil, []string{"migrate", "-dir", dir, "-db", db}, 2, []string{"give -table and -key-column"}},
		{"bad table name", nil, []string{"migrate", "-dir", dir, "-db", db, "-table", "a;drop", "-key-column", "k"}, 2, []string{"invalid identifier"}},
		{"table not in database", nil, append([]string{"migrate", "-dir", dir, "-db", db}, tbl...), 1, []string{"no such table"}},
		{"revert with final", nil, append([]string{"migrate", "-dir", dir, "-db", db, "-revert", "-final"}, tbl...), 2, []string{"-revert runs alone"}},
		{"negative min age", nil, append([]string{"cleanup", "-dir", dir, "-db", db, "-min-age", "-1h"}, tbl...), 2, []string{"-min-age"}},
		{"help for nothing", nil, []string{"help", "nothing"}, 2, []string{`unknown command "nothing"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.with(tc.env...).run(tc.args...)
			requireOneLineError(t, r, tc.code, tc.want...)
			require.NotContains(t, r.stderr, "secret", "no password in messages")
		})
	}
}
