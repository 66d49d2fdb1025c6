package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/dbsource"
	"github.com/casa-go/casa/internal/testutil"
)

// testApp is an App served by an httptest.Server over loopback.
type testApp struct {
	*App
	t       testing.TB
	srv     *httptest.Server
	backend cas.Backend
}

// newTestApp starts an App on a fresh data directory. Unless cfg says
// otherwise the blobs live in a memstore, so tests can count objects.
func newTestApp(t testing.TB, cfg Config) *testApp {
	t.Helper()
	if cfg.Backend == nil {
		cfg.Backend = memstore.New()
	}
	return serveApp(t, cfg)
}

// serveApp starts an App as cfg says: with no Backend, the default
// fsstore in the data directory.
func serveApp(t testing.TB, cfg Config) *testApp {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	app, err := NewApp(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, app.Close()) })
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	return &testApp{App: app, t: t, srv: srv, backend: app.store.Backend()}
}

// do sends a request and returns the status and the body.
func (ta *testApp) do(method, path, contentType string, body io.Reader) (int, []byte) {
	ta.t.Helper()
	req, err := http.NewRequestWithContext(ta.t.Context(), method, ta.srv.URL+path, body)
	require.NoError(ta.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ta.srv.Client().Do(req)
	require.NoError(ta.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(ta.t, err)
	return resp.StatusCode, b
}

// doJSON sends v as JSON and decodes the response into out (when not nil),
// after checking the status.
func (ta *testApp) doJSON(method, path string, v any, wantStatus int, out any) {
	ta.t.Helper()
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		require.NoError(ta.t, err)
		body = bytes.NewReader(b)
	}
	status, b := ta.do(method, path, "application/json", body)
	require.Equal(ta.t, wantStatus, status, "body: %s", b)
	if out != nil {
		require.NoError(ta.t, json.Unmarshal(b, out), "body: %s", b)
	}
}

// createPart creates a part and returns its key.
func (ta *testApp) createPart(description string) string {
	ta.t.Helper()
	var p partJSON
	ta.doJSON("POST", "/api/parts", map[string]string{"description": description}, http.StatusCreated, &p)
	require.NotEmpty(ta.t, p.Key)
	return p.Key
}

// upload posts a multipart upload and returns status and body.
func (ta *testApp) upload(partKey, title, filename, contentType string, data []byte) (int, []byte) {
	ta.t.Helper()
	body, ct := multipartBody(ta.t, title, filename, contentType, data)
	return ta.do("POST", "/api/parts/"+partKey+"/attachments", ct, body)
}

// uploadOK uploads and decodes the 201 response.
func (ta *testApp) uploadOK(partKey, title, filename, contentType string, data []byte) attachmentJSON {
	ta.t.Helper()
	status, b := ta.upload(partKey, title, filename, contentType, data)
	require.Equal(ta.t, http.StatusCreated, status, "body: %s", b)
	var at attachmentJSON
	require.NoError(ta.t, json.Unmarshal(b, &at))
	return at
}

// get fetches a URL path of the server and returns status, headers, body.
func (ta *testApp) get(path string) (int, http.Header, []byte) {
	ta.t.Helper()
	resp, err := ta.srv.Client().Get(ta.srv.URL + path)
	require.NoError(ta.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(ta.t, err)
	return resp.StatusCode, resp.Header, b
}

// attachments lists a part's attachments.
func (ta *testApp) attachments(partKey string) []attachmentJSON {
	ta.t.Helper()
	var atts []attachmentJSON
	ta.doJSON("GET", "/api/parts/"+partKey+"/attachments", nil, http.StatusOK, &atts)
	return atts
}

// rowCount counts the rows of table.
func (ta *testApp) rowCount(table string) int {
	ta.t.Helper()
	return countRows(ta.t, ta.db, table)
}

// countRows counts the rows of table in db (an appDB or a *sql.DB).
func countRows(t testing.TB, db interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// multipartBody builds a form with a title field (if not empty) and a file
// part.
func multipartBody(t testing.TB, title, filename, contentType string, data []byte) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if title != "" {
		require.NoError(t, mw.WriteField("title", title))
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+strings.NewReplacer(`"`, `\"`, `\`, `\\`).Replace(filename)+`"`)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	w, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

// keys lists the keys of b under prefix.
func keys(t testing.TB, b cas.Backend, prefix string) []string {
	t.Helper()
	var ks []string
	for info, err := range b.List(context.WithoutCancel(t.Context()), prefix) {
		require.NoError(t, err)
		ks = append(ks, info.Key)
	}
	return ks
}

// legacyKeys lists the non-CAS keys of b.
func legacyKeys(t testing.TB, b cas.Backend) []string {
	t.Helper()
	var ks []string
	for _, k := range keys(t, b, "") {
		if !cas.IsKey(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// buildApp builds the app, as `go build` would, into dir and returns the
// binary's path: for the tests that measure the real process (memory, file
// descriptors).
func buildApp(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "inventory")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// testDB is a test's database: SQLite in the data directory dir, or, when
// dsn is set, a fresh PostgreSQL schema or MySQL database, as the URL -db
// takes (dir still holds the rest).
type testDB struct{ dir, dsn string }

// where is the database as seed and storageKeys take it.
func (d testDB) where() string {
	if d.dsn != "" {
		return d.dsn
	}
	return d.dir
}

// forEachDB runs f in parallel subtests on SQLite, on PostgreSQL (a fresh
// schema on the server of CASA_TEST_POSTGRES_DSN) and on MySQL/MariaDB (a
// fresh database on the server of CASA_TEST_MYSQL_DSN, through a mysql://
// URL), so that the app's SQL is tested on all three. Without a server
// its subtest skips; under CI=true it fails.
func forEachDB(t *testing.T, f func(t *testing.T, d testDB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, testDB{dir: t.TempDir()})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, testDB{dir: t.TempDir(), dsn: testutil.NewPostgres(t).DSN})
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		f(t, testDB{dir: t.TempDir(), dsn: testutil.NewMySQL(t).URL()})
	})
}

// dbIn is the database a test helper opens: where itself when it is a
// PostgreSQL or MySQL URL, else the SQLite file in the data directory where.
func dbIn(where string) string {
	if dbsource.IsPostgres(where) || dbsource.IsMySQL(where) {
		return where
	}
	return filepath.Join(where, "inventory.db")
}

// process is the built app running as a child process.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *syncBuffer // stderr and stdout: the app's log
	data string      // its -data directory
	base string      // http://127.0.0.1:port, once serving
	done chan struct{}
}

// servingRE finds the app's "serving" log line.
var servingRE = regexp.MustCompile(`msg=serving url=(http://127\.0\.0\.1:\d+)/`)

// launchBinary starts bin on a free port (-addr 127.0.0.1:0) with a fresh
// -data directory and args, and returns at once; wait for it with
// waitServing. env is added to the test's environment. The process is
// interrupted (as Ctrl-C would) when the test ends, killed if it does not
// exit within 10 s.
func launchBinary(t *testing.T, bin, name string, env []string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, out: &syncBuffer{}, data: t.TempDir(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-data", p.data}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// startBinary is launchBinary, then waitServing.
func startBinary(t *testing.T, bin, name string, env []string, args ...string) *process {
	t.Helper()
	p := launchBinary(t, bin, name, env, args...)
	p.waitServing()
	return p
}

// waitServing waits up to a minute for the app's "serving" line and
// records its URL; an exit before it fails the test with the log.
func (p *process) waitServing() {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(p.out.String()); m != nil {
			p.base = m[1]
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before serving: %v\n%s", p.name, p.cmd.ProcessState, p.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s is not serving after a minute:\n%s", p.name, p.out)
}

// stop interrupts the process and waits for it to exit (killing it after
// 10 s). Calling it again does nothing.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// get fetches path from the process and returns status, headers and body.
func (p *process) get(path string) (int, http.Header, []byte) {
	p.t.Helper()
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(p.base + path)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	return resp.StatusCode, resp.Header, b
}

// getJSON fetches path, requires 200 and decodes the body into out.
func (p *process) getJSON(path string, out any) {
	p.t.Helper()
	status, _, b := p.get(path)
	require.Equal(p.t, http.StatusOK, status, "%s GET %s: %s", p.name, path, b)
	require.NoError(p.t, json.Unmarshal(b, out), "%s GET %s: %s", p.name, path, b)
}

// post sends body to path and requires wantStatus; it decodes the answer
// into out when out is not nil.
func (p *process) post(path, contentType string, body io.Reader, wantStatus int, out any) {
	p.t.Helper()
	resp, err := http.Post(p.base+path, contentType, body)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	require.Equal(p.t, wantStatus, resp.StatusCode, "%s POST %s: %s", p.name, path, b)
	if out != nil {
		require.NoError(p.t, json.Unmarshal(b, out), "%s POST %s: %s", p.name, path, b)
	}
}
