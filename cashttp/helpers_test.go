package cashttp_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// fixture is a Store over a real Backend seen through a counting
// faulty.Backend, and a server running a Handler for it.
type fixture struct {
	store  *cas.Store
	counts *faulty.Backend
	srv    *httptest.Server
	logs   *syncBuffer
}

func newFixture(t testing.TB, b cas.Backend, opts ...cashttp.Option) *fixture {
	t.Helper()
	return newFixtureFunc(t, b, func(*cas.Store) []cashttp.Option { return opts })
}

// newFixtureFunc is newFixture with options that need the fixture's Store
// (such as a thumbnail.Service reading through the counting Backend).
func newFixtureFunc(t testing.TB, b cas.Backend, optsFor func(*cas.Store) []cashttp.Option) *fixture {
	t.Helper()
	f := &fixture{counts: faulty.New(b), logs: &syncBuffer{}}
	f.store = cas.New(f.counts)
	opts := optsFor(f.store)
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := cashttp.NewHandler(f.store, append([]cashttp.Option{cashttp.WithLogger(logger)}, opts...)...)
	mux := http.NewServeMux()
	mux.Handle("/api/cas/", h)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) put(t testing.TB, data []byte) cas.Hash {
	t.Helper()
	res, err := f.store.Put(context.Background(), bytes.NewReader(data))
	require.NoError(t, err)
	f.counts.Reset()
	return res.Hash
}

// backendCalls is the total number of Backend calls since the last Reset.
func (f *fixture) backendCalls() int {
	n := 0
	for _, c := range f.counts.Counts() {
		n += c
	}
	return n
}

type response struct {
	*http.Response
	body []byte
}

// do sends a request to the fixture's server and reads the whole response.
func (f *fixture) do(t testing.TB, method, target string, hdr ...string) response {
	t.Helper()
	return doURL(t, f.srv.Client(), method, f.srv.URL+target, hdr...)
}

func doURL(t testing.TB, c *http.Client, method, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{res, body}
}

// serve runs h on a request built from target without a network, the way
// a router would call it.
func serve(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// requireErrorResponse checks the common shape of every error response.
func requireErrorResponse(t testing.TB, status int, hdr http.Header, body []byte, wantStatus int) {
	t.Helper()
	require.Equal(t, wantStatus, status, "body: %q", body)
	require.Equal(t, "no-store", hdr.Get("Cache-Control"))
	require.Equal(t, "text/plain; charset=utf-8", hdr.Get("Content-Type"))
	require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
	require.Empty(t, hdr.Get("ETag"))
	require.Empty(t, hdr.Get("Content-Disposition"))
	require.NotEmpty(t, body)
	require.Less(t, len(body), 300, "a short reason")
	require.NotContains(t, strings.ToLower(string(body)), "injected")
	// The package prefixes of the injected errors (faulty's, s3test's) stay
	// in the logs.
	for _, internal := range []string{"testutil", "faulty", "s3test"} {
		require.NotContains(t, string(body), internal)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// thumbFunc is a Thumbnailer from a function, for injecting faults and
// counting calls.
type thumbFunc struct {
	mu    sync.Mutex
	calls int
	f     func(ctx context.Context, h cas.Hash, size int) ([]byte, error)
}

func (t *thumbFunc) Get(ctx context.Context, h cas.Hash, size int) ([]byte, error) {
	t.mu.Lock()
	t.calls++
	t.mu.Unlock()
	return t.f(ctx, h, size)
}

func (t *thumbFunc) Calls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
}

// recorder is a slog.Handler that keeps every record, for tests of log
// levels and attributes.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// logged is a record reduced to what tests compare.
type logged struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// Records returns the records so far.
func (r *recorder) Records() []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]logged, 0, len(r.records))
	for _, rec := range r.records {
		l := logged{Level: rec.Level, Msg: rec.Message, Attrs: map[string]string{}}
		rec.Attrs(func(a slog.Attr) bool {
			l.Attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, l)
	}
	return out
}

// AtLeast returns the records at level or above.
func (r *recorder) AtLeast(level slog.Level) []logged {
	return slices.DeleteFunc(r.Records(), func(l logged) bool { return l.Level < level })
}
