package cashttp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/internal/testutil/s3test"
	"github.com/casa-go/casa/thumbnail"
)

// errS3Timeout is what s3store reports when S3 does not answer: it names
// the backend and the operation, and wraps cas.ErrUnavailable.
var errS3Timeout = fmt.Errorf("s3store: HeadObject cas/…: no answer within 10s: %w", cas.ErrUnavailable)

// TestThumbnailFailureLogLevels: a corrupt source image or a generation
// past its deadline is a 500 with no-store logged at Warn level as a bad
// source image, naming the hash and size; a storage failure is still an
// Error; over-limit and unsupported images stay 415 and quiet; an
// unavailable backend is a 503 with Retry-After.
func TestThumbnailFailureLogLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		level  slog.Level // of the one record at Warn or above; 0: none
		msg    string
	}{
		{"corrupt", fmt.Errorf("thumbnail: decode: %w: unexpected EOF", thumbnail.ErrCorrupt), http.StatusInternalServerError, slog.LevelWarn, "cashttp: bad source image"},
		{"timeout", fmt.Errorf("thumbnail: generation: %w (deadline 10s)", thumbnail.ErrTimeout), http.StatusInternalServerError, slog.LevelWarn, "cashttp: bad source image"},
		{"too large", fmt.Errorf("x: %w", thumbnail.ErrTooLarge), http.StatusUnsupportedMediaType, 0, ""},
		{"unsupported", fmt.Errorf("x: %w", thumbnail.ErrUnsupported), http.StatusUnsupportedMediaType, 0, ""},
		{"storage failure", fmt.Errorf("read source: %w", faulty.ErrInjected), http.StatusInternalServerError, slog.LevelError, "cashttp: storage failure"},
		{"backend unavailable", fmt.Errorf("open source: %w", errS3Timeout), http.StatusServiceUnavailable, slog.LevelWarn, "cashttp: backend unavailable"},
		{"unavailable beats timeout", fmt.Errorf("%w: %w", thumbnail.ErrTimeout, errS3Timeout), http.StatusServiceUnavailable, slog.LevelWarn, "cashttp: backend unavailable"},
		// A Thumbnailer other than thumbnail's speaks the contract through the cas sentinels alone.
		{"cas corrupt", fmt.Errorf("mythumbs: decode: %w", cas.ErrCorrupt), http.StatusInternalServerError, slog.LevelWarn, "cashttp: bad source image"},
		{"cas unsupported", fmt.Errorf("mythumbs: %w", cas.ErrUnsupported), http.StatusUnsupportedMediaType, 0, ""},
		{"cas too large", fmt.Errorf("mythumbs: %w", cas.ErrTooLarge), http.StatusUnsupportedMediaType, 0, ""},
		{"cas not found", fmt.Errorf("mythumbs: %w", cas.ErrNotFound), http.StatusNotFound, 0, ""},
		{"cas unavailable beats corrupt", fmt.Errorf("%w: %w", cas.ErrCorrupt, cas.ErrUnavailable), http.StatusServiceUnavailable, slog.LevelWarn, "cashttp: backend unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &recorder{}
			tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return nil, tt.err }}
			hd := cashttp.NewHandler(cas.New(memstore.New()), cashttp.WithThumbnails(tf), cashttp.WithLogger(slog.New(logs)))
			h := cas.SumBytes([]byte("photo"))
			rec := serve(hd, http.MethodGet, urls.Thumbnail(h, 128))
			requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), tt.status)
			require.Equal(t, 1, tf.Calls())

			loud := logs.AtLeast(slog.LevelWarn)
			if tt.level == 0 {
				require.Empty(t, loud)
				return
			}
			require.Len(t, loud, 1, "%+v", loud)
			require.Equal(t, tt.level, loud[0].Level)
			require.Equal(t, tt.msg, loud[0].Msg)
			require.Equal(t, h.String(), loud[0].Attrs["hash"])
			require.Equal(t, tt.err.Error(), loud[0].Attrs["err"])
			if tt.msg == "cashttp: bad source image" {
				require.Equal(t, "128", loud[0].Attrs["size"])
			}
			if tt.status == http.StatusServiceUnavailable {
				require.Equal(t, strconv.Itoa(cashttp.RetryAfterSeconds), rec.Header().Get("Retry-After"))
			} else {
				require.Empty(t, rec.Header().Get("Retry-After"))
			}
		})
	}
}

// requireUnavailable checks a 503 for a backend that did not answer in
// time, and its one Warn record.
func requireUnavailable(t *testing.T, status int, hdr http.Header, body []byte, logs *recorder, h cas.Hash, errText string) {
	t.Helper()
	requireErrorResponse(t, status, hdr, body, http.StatusServiceUnavailable)
	require.Equal(t, "5", hdr.Get("Retry-After"))
	require.NotContains(t, string(body), "HeadObject", "the cause is logged, not sent")
	loud := logs.AtLeast(slog.LevelWarn)
	require.Len(t, loud, 1, "%+v", loud)
	require.Equal(t, slog.LevelWarn, loud[0].Level)
	require.Equal(t, "cashttp: backend unavailable", loud[0].Msg)
	require.Equal(t, h.String(), loud[0].Attrs["hash"])
	require.Contains(t, loud[0].Attrs["err"], errText)
}

// TestBackendUnavailable: an Open failing with an error that wraps
// cas.ErrUnavailable, or with the backend's own context.DeadlineExceeded
// while the request is live, is a 503 with Retry-After, logged at Warn
// with the hash and the backend's error; the next request is served.
func TestBackendUnavailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, errText string
		err           error
	}{
		{"ErrUnavailable", "s3store: HeadObject", errS3Timeout},
		{"backend deadline", "context deadline exceeded", fmt.Errorf("s3store: HeadObject: operation error S3: %w", context.DeadlineExceeded)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &recorder{}
			fb := faulty.New(memstore.New(), faulty.WithError(tt.err))
			store := cas.New(fb)
			res, err := store.Put(context.Background(), bytes.NewReader([]byte("blob")))
			require.NoError(t, err)
			srv := httptest.NewServer(cashttp.NewHandler(store, cashttp.WithLogger(slog.New(logs))))
			t.Cleanup(srv.Close)
			fb.Reset()
			fb.FailNth(faulty.MethodOpen, 1)

			got := doURL(t, srv.Client(), http.MethodGet, srv.URL+urls.Inline(res.Hash, "text/plain"))
			requireUnavailable(t, got.StatusCode, got.Header, got.body, logs, res.Hash, tt.errText)

			got = doURL(t, srv.Client(), http.MethodGet, srv.URL+urls.Inline(res.Hash, "text/plain"))
			require.Equal(t, http.StatusOK, got.StatusCode)
			require.Equal(t, "blob", string(got.body))
		})
	}
}

// TestHungBackendOpenBound: a backend whose Open blocks until its context
// is done is cut off by WithBackendTimeout: 503 with Retry-After soon after
// the bound, not when the client gives up.
func TestHungBackendOpenBound(t *testing.T) {
	t.Parallel()
	logs := &recorder{}
	fb := faulty.New(memstore.New())
	store := cas.New(fb)
	res, err := store.Put(context.Background(), bytes.NewReader([]byte("blob")))
	require.NoError(t, err)
	fb.SetLatency(time.Hour) // every call blocks until its context is done
	hd := cashttp.NewHandler(store, cashttp.WithLogger(slog.New(logs)), cashttp.WithBackendTimeout(100*time.Millisecond))
	srv := httptest.NewServer(hd)
	t.Cleanup(srv.Close)

	start := time.Now()
	got := doURL(t, srv.Client(), http.MethodGet, srv.URL+urls.Inline(res.Hash, "text/plain"))
	elapsed := time.Since(start)
	requireUnavailable(t, got.StatusCode, got.Header, got.body, logs, res.Hash, "did not open the blob in time: cas: backend unavailable: no answer within 100ms")
	require.GreaterOrEqual(t, elapsed, 100*time.Millisecond)
	require.Less(t, elapsed, 5*time.Second)
	require.Equal(t, 1, fb.Calls(faulty.MethodOpen))

	// When the backend answers again, so does the handler.
	fb.SetLatency(0)
	got = doURL(t, srv.Client(), http.MethodGet, srv.URL+urls.Inline(res.Hash, "text/plain"))
	require.Equal(t, http.StatusOK, got.StatusCode)
}

// TestHungBackendRequestDeadline: with the Open bound off, a deadline the
// server put on the request (the client is still there) ends a hung Open
// with the same 503 and Retry-After.
func TestHungBackendRequestDeadline(t *testing.T) {
	t.Parallel()
	logs := &recorder{}
	fb := faulty.New(memstore.New(), faulty.WithLatency(time.Hour))
	hd := cashttp.NewHandler(cas.New(fb), cashttp.WithLogger(slog.New(logs)), cashttp.WithBackendTimeout(0))
	h := cas.SumBytes([]byte("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, urls.Inline(h, "a/b"), nil)
	rec := httptest.NewRecorder()
	start := time.Now()
	hd.ServeHTTP(rec, req)
	require.Less(t, time.Since(start), 5*time.Second)
	requireUnavailable(t, rec.Code, rec.Header(), rec.Body.Bytes(), logs, h, "context deadline exceeded")
}

// TestClientGoneIsQuiet: a client that hung up is not a backend problem:
// 503 without Retry-After, nothing logged at Warn or above.
func TestClientGoneIsQuiet(t *testing.T) {
	t.Parallel()
	logs := &recorder{}
	fb := faulty.New(memstore.New(), faulty.WithLatency(time.Hour))
	hd := cashttp.NewHandler(cas.New(fb), cashttp.WithLogger(slog.New(logs)))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, urls.Inline(cas.SumBytes([]byte("x")), "a/b"), nil)
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusServiceUnavailable)
	require.Empty(t, rec.Header().Get("Retry-After"))
	require.Empty(t, logs.AtLeast(slog.LevelWarn))
}

// TestOpenBoundLeavesReadsAlone: the Open bound ends with the Open. s3store
// reads a blob with ranged GETs under the Open's context, so a blob that
// opened in time is read in full: its ranged GETs come after the Open, and
// cancelling the Open's context once it returned would fail them.
func TestOpenBoundLeavesReadsAlone(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	fb := faulty.New(s3store.New(s.Client, s.Bucket))
	f := newFixture(t, fb, cashttp.WithBackendTimeout(time.Second))
	data := testutil.Bytes(8, 300_000)
	h := f.put(t, data)
	fb.SetLatency(100 * time.Millisecond) // the Open takes a tenth of the bound
	res := f.do(t, http.MethodGet, urls.Inline(h, "application/octet-stream"), "Range", "bytes=0-9,100000-100009,-10")
	require.Equal(t, http.StatusPartialContent, res.StatusCode, "%s", res.body)
	res = f.do(t, http.MethodGet, urls.Inline(h, "application/octet-stream"))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, bytes.Equal(data, res.body))
	require.NotContains(t, f.logs.String(), "level=WARN")
	require.NotContains(t, f.logs.String(), "level=ERROR")
}

// TestBackendTimeoutDefault: the default bound is DefaultBackendTimeout,
// and zero turns it off.
func TestBackendTimeoutDefault(t *testing.T) {
	t.Parallel()
	require.Equal(t, 15*time.Second, cashttp.DefaultBackendTimeout)
	fb := faulty.New(memstore.New(), faulty.WithLatency(time.Hour))
	hd := cashttp.NewHandler(cas.New(fb), cashttp.WithBackendTimeout(time.Millisecond), cashttp.WithBackendTimeout(0))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, urls.Inline(cas.SumBytes([]byte("x")), "a/b"), nil)
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "no bound: the request deadline ended it")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.True(t, errors.Is(ctx.Err(), context.DeadlineExceeded))
}
