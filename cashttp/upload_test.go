package cashttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// uploadFixture is an UploadHandler mounted on /api/uploads/ of a real
// HTTP server, over a counting Backend.
type uploadFixture struct {
	store  *cas.Store
	counts *faulty.Backend
	srv    *httptest.Server
	logs   *syncBuffer
	// bodyBytes counts the request body bytes the handler read.
	bodyBytes atomic.Int64
}

func newUploadFixture(t *testing.T, b cas.Backend, opts ...cashttp.UploadOption) *uploadFixture {
	t.Helper()
	f := &uploadFixture{counts: faulty.New(b), logs: &syncBuffer{}}
	f.store = cas.New(f.counts)
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := cashttp.NewUploadHandler(f.store, append([]cashttp.UploadOption{cashttp.WithUploadLogger(logger)}, opts...)...)
	mux := http.NewServeMux()
	mux.Handle("/api/uploads/", http.StripPrefix("/api/uploads", h))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &countBody{ReadCloser: r.Body, n: &f.bodyBytes}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// countBody counts the bytes read from a request body.
type countBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (f *uploadFixture) req(t *testing.T, method, path, ct string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+"/api/uploads"+path, bytes.NewReader(body))
	require.NoError(t, err)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp, b}
}

func (f *uploadFixture) client() *cashttp.UploadClient {
	return &cashttp.UploadClient{BaseURL: f.srv.URL + "/api/uploads", HTTP: f.srv.Client()}
}

// TestUploadProtocol: PUT stores a body only under its own hash (201),
// answers 200 for a blob already stored without reading the body, refuses
// other bytes (400, nothing stored); HEAD says 200 or 404; the batch
// returns the missing hashes in order, without repeats. On every Backend.
func TestUploadProtocol(t *testing.T) {
	t.Parallel()
	for _, bk := range backendtest.All() {
		t.Run(bk.Name, func(t *testing.T) {
			t.Parallel()
			f := newUploadFixture(t, bk.New(t))
			data := testutil.Bytes(1, 10000)
			h := cas.SumBytes(data)
			other := cas.SumBytes([]byte("never stored"))

			r := f.req(t, http.MethodHead, "/"+h.String(), "", nil)
			require.Equal(t, http.StatusNotFound, r.StatusCode)

			r = f.req(t, http.MethodPut, "/"+h.String(), "", testutil.Bytes(2, 10000))
			require.Equal(t, http.StatusBadRequest, r.StatusCode, "%s", r.body)
			require.Contains(t, string(r.body), "does not hash to")
			require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
			ok, err := f.store.Has(t.Context(), h)
			require.NoError(t, err)
			require.False(t, ok, "nothing stored")
			keys := 0
			for _, err := range f.store.Backend().List(t.Context(), "") {
				require.NoError(t, err)
				keys++
			}
			require.Zero(t, keys, "not even under the bytes' own hash")

			r = f.req(t, http.MethodPut, "/"+h.String(), "", data)
			require.Equal(t, http.StatusCreated, r.StatusCode, "%s", r.body)
			require.JSONEq(t, fmt.Sprintf(`{"hash":%q,"size":10000}`, h), string(r.body))
			obj, err := f.store.Open(t.Context(), h)
			require.NoError(t, err)
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.NoError(t, obj.Close())
			require.Equal(t, data, got)

			before := f.bodyBytes.Load()
			r = f.req(t, http.MethodPut, "/"+h.String(), "", data)
			require.Equal(t, http.StatusOK, r.StatusCode, "already stored")
			require.Less(t, f.bodyBytes.Load()-before, int64(len(data)), "the body of a known blob is not read whole")

			r = f.req(t, http.MethodHead, "/"+h.String(), "", nil)
			require.Equal(t, http.StatusOK, r.StatusCode)

			body := fmt.Sprintf(`{"hashes": [%q, %q, %q]}`, other, h, other)
			r = f.req(t, http.MethodPost, "/missing", "application/json", []byte(body))
			require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
			require.JSONEq(t, fmt.Sprintf(`{"missing":[%q]}`, other), string(r.body))
			r = f.req(t, http.MethodPost, "/missing", "application/json; charset=utf-8", []byte(`{"hashes":[]}`))
			require.JSONEq(t, `{"missing":[]}`, string(r.body))
		})
	}
}

// TestUploadLimits: a declared Content-Length over the maximum is refused
// with 413 before any byte is read; a chunked body is cut off at the
// maximum (413, nothing stored); a Store's own limit is 413 too.
func TestUploadLimits(t *testing.T) {
	t.Parallel()
	f := newUploadFixture(t, memstore.New(), cashttp.WithMaxUploadSize(1000))
	data := testutil.Bytes(3, 1001)
	h := cas.SumBytes(data)

	r := f.req(t, http.MethodPut, "/"+h.String(), "", data)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.StatusCode)
	require.Zero(t, f.bodyBytes.Load(), "refused before reading")

	req, err := http.NewRequest(http.MethodPut, f.srv.URL+"/api/uploads/"+h.String(), io.MultiReader(bytes.NewReader(data)))
	require.NoError(t, err)
	req.ContentLength = -1 // chunked
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	ok, err := f.store.Has(t.Context(), h)
	require.NoError(t, err)
	require.False(t, ok)

	small := newUploadFixture(t, memstore.New())
	small.store = cas.New(small.counts, cas.WithMaxSize(10))
	h2 := cas.SumBytes(data)
	st := cashttp.NewUploadHandler(small.store)
	rec := httptest.NewRecorder()
	st.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/"+h2.String(), bytes.NewReader(data)))
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "the Store's WithMaxSize")
}

// TestUploadHostileInput: the table of requests the protocol refuses, each
// with its status and, where it matters, the words of the reason; nothing
// reaches storage for any of them.
func TestUploadHostileInput(t *testing.T) {
	t.Parallel()
	f := newUploadFixture(t, memstore.New(), cashttp.WithMaxBatch(3))
	h := cas.SumBytes([]byte("x")).String()
	q := func(s string) string { return `"` + s + `"` }
	long := strings.Repeat(`"`+h+`",`, 3) + `"` + h + `"`
	for _, tc := range []struct {
		name, method, path, ct, body string
		status                       int
		reason                       string
	}{
		{"GET", http.MethodGet, "/" + h, "", "", http.StatusMethodNotAllowed, ""},
		{"DELETE", http.MethodDelete, "/" + h, "", "", http.StatusMethodNotAllowed, ""},
		{"uppercase hash", http.MethodPut, "/" + strings.ToUpper(h), "", "x", http.StatusBadRequest, "invalid hash"},
		{"short hash", http.MethodHead, "/" + h[:63], "", "", http.StatusBadRequest, ""},
		{"traversal", http.MethodPut, "/..%2f" + h, "", "x", http.StatusBadRequest, "invalid hash"},
		{"POST to a hash", http.MethodPost, "/" + h, "application/json", `{"hashes":[]}`, http.StatusNotFound, ""},
		{"batch: text/plain", http.MethodPost, "/missing", "text/plain", `{"hashes":[]}`, http.StatusUnsupportedMediaType, ""},
		{"batch: no type", http.MethodPost, "/missing", "", `{"hashes":[]}`, http.StatusUnsupportedMediaType, ""},
		{"batch: empty body", http.MethodPost, "/missing", "application/json", ``, http.StatusBadRequest, "ended"},
		{"batch: bare list", http.MethodPost, "/missing", "application/json", `[` + q(h) + `]`, http.StatusBadRequest, "object"},
		{"batch: null", http.MethodPost, "/missing", "application/json", `{"hashes":null}`, http.StatusBadRequest, "array"},
		{"batch: unknown key", http.MethodPost, "/missing", "application/json", `{"hashes":[],"x":1}`, http.StatusBadRequest, "one key"},
		{"batch: repeated key", http.MethodPost, "/missing", "application/json", `{"hashes":[],"hashes":[]}`, http.StatusBadRequest, "one key"},
		{"batch: key case", http.MethodPost, "/missing", "application/json", `{"Hashes":[]}`, http.StatusBadRequest, "one key"},
		{"batch: trailing", http.MethodPost, "/missing", "application/json", `{"hashes":[]}{}`, http.StatusBadRequest, "trailing"},
		{"batch: trailing garbage", http.MethodPost, "/missing", "application/json", `{"hashes":[]} x`, http.StatusBadRequest, ""},
		{"batch: number", http.MethodPost, "/missing", "application/json", `{"hashes":[1]}`, http.StatusBadRequest, "hashes[0]"},
		{"batch: nested", http.MethodPost, "/missing", "application/json", `{"hashes":[[` + q(h) + `]]}`, http.StatusBadRequest, "hashes[0]"},
		{"batch: bad second", http.MethodPost, "/missing", "application/json", `{"hashes":[` + q(h) + `,"zz"]}`, http.StatusBadRequest, `hashes[1]: invalid hash "zz"`},
		{"batch: control chars", http.MethodPost, "/missing", "application/json", `{"hashes":["\u0000\r\n"]}`, http.StatusBadRequest, `"\x00\r\n"`},
		{"batch: long entry", http.MethodPost, "/missing", "application/json", `{"hashes":[` + q(strings.Repeat("a", 200)) + `]}`, http.StatusBadRequest, "..."},
		{"batch: truncated", http.MethodPost, "/missing", "application/json", `{"hashes":[` + q(h), http.StatusBadRequest, ""},
		{"batch: too many", http.MethodPost, "/missing", "application/json", `{"hashes":[` + long + `]}`, http.StatusRequestEntityTooLarge, ""},
		{"batch: body too long", http.MethodPost, "/missing", "application/json", `{"hashes":[` + strings.Repeat(" ", 1000) + `]}`, http.StatusRequestEntityTooLarge, ""},
	} {
		f.counts.Reset()
		r := f.req(t, tc.method, tc.path, tc.ct, []byte(tc.body))
		require.Equal(t, tc.status, r.StatusCode, "%s: %s", tc.name, r.body)
		if tc.method != http.MethodHead {
			require.Contains(t, string(r.body), tc.reason, tc.name)
		}
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"), tc.name)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), tc.name)
		require.Zero(t, f.counts.Counts()[faulty.MethodPut], tc.name)
		if tc.status == http.StatusMethodNotAllowed {
			require.Equal(t, "PUT, HEAD, POST", r.Header.Get("Allow"))
		}
	}
}

// TestUploadStorageErrors: a backend that does not answer in time is 503
// with Retry-After, a full one 507, another failure 500 logged at Error;
// no backend text reaches the client.
func TestUploadStorageErrors(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("x"))
	for _, tc := range []struct {
		err    error
		status int
		log    string
	}{
		{cas.ErrUnavailable, http.StatusServiceUnavailable, "level=WARN"},
		{cas.ErrNoSpace, http.StatusInsufficientStorage, "level=WARN"},
		{faulty.ErrInjected, http.StatusInternalServerError, "level=ERROR"},
	} {
		f := newUploadFixture(t, memstore.New())
		f.counts.FailKeys(h.Key())
		inj := faulty.New(memstore.New(), faulty.WithError(tc.err), faulty.WithFailKeys(h.Key()))
		f.store = cas.New(inj)
		hd := cashttp.NewUploadHandler(f.store, cashttp.WithUploadLogger(slog.New(slog.NewTextHandler(f.logs, nil))))
		for _, method := range []string{http.MethodHead, http.MethodPut} {
			rec := httptest.NewRecorder()
			hd.ServeHTTP(rec, httptest.NewRequest(method, "/"+h.String(), strings.NewReader("x")))
			require.Equal(t, tc.status, rec.Code, "%v %s", tc.err, method)
			require.NotContains(t, rec.Body.String(), "injected")
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/missing", strings.NewReader(`{"hashes":["`+h.String()+`"]}`))
		req.Header.Set("Content-Type", "application/json")
		hd.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, "%v batch", tc.err)
		require.Contains(t, f.logs.String(), tc.log)
		if tc.status == http.StatusServiceUnavailable {
			require.Equal(t, "5", rec.Header().Get("Retry-After"))
		}
	}
}

// TestUploadMetrics: requests are counted by kind and status, and the
// PUT body bytes by outcome.
func TestUploadMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	f := newUploadFixture(t, memstore.New(), cashttp.WithUploadMeterProvider(mp))
	data := []byte("metrics")
	h := cas.SumBytes(data)
	f.req(t, http.MethodPut, "/"+h.String(), "", data)
	f.req(t, http.MethodPut, "/"+cas.SumBytes([]byte("other")).String(), "", []byte("other!!"))
	f.req(t, http.MethodHead, "/"+h.String(), "", nil)
	f.req(t, http.MethodPost, "/missing", "application/json", []byte(`{"hashes":[]}`))
	f.req(t, http.MethodGet, "/"+h.String(), "", nil)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	requests := map[string]int64{}
	uploaded := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				switch m.Name {
				case "casa.http.requests":
					kind, _ := dp.Attributes.Value("kind")
					code, _ := dp.Attributes.Value("http.response.status_code")
					requests[fmt.Sprintf("%s %d", kind.AsString(), code.AsInt64())] += dp.Value
				case "casa.http.upload.bytes":
					outcome, _ := dp.Attributes.Value("outcome")
					uploaded[outcome.AsString()] += dp.Value
				}
			}
		}
	}
	require.Equal(t, map[string]int64{"upload 201": 1, "upload 400": 1, "exists 200": 1, "missing 200": 1, "invalid 405": 1}, requests)
	require.Equal(t, map[string]int64{"stored": 7, "refused": 7}, uploaded)
}

// TestUploadOptionPanics: nonsense option values panic when made.
func TestUploadOptionPanics(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { cashttp.WithMaxUploadSize(0) })
	require.Panics(t, func() { cashttp.WithMaxBatch(0) })
}

// TestUploadSkipsKnownBytes is the figure of the issue: uploading 100
// files of which 90 are already stored, through UploadClient (a batch
// first, then a PUT for each missing file), moves about 10% of the bytes.
// The request body bytes the server read are counted; the JSON of the
// batch is included.
func TestUploadSkipsKnownBytes(t *testing.T) {
	t.Parallel()
	f := newUploadFixture(t, memstore.New())
	const n, size = 100, 64 << 10
	files := make([][]byte, n)
	hashes := make([]cas.Hash, n)
	var total int64
	for i := range files {
		files[i] = testutil.Bytes(uint64(1000+i), size)
		hashes[i] = cas.SumBytes(files[i])
		total += size
		if i%10 != 0 { // 90 stored beforehand
			_, err := f.store.Put(t.Context(), bytes.NewReader(files[i]))
			require.NoError(t, err)
		}
	}
	f.bodyBytes.Store(0)
	c := f.client()
	missing, err := c.Missing(t.Context(), hashes)
	require.NoError(t, err)
	require.Len(t, missing, 10)
	index := map[cas.Hash]int{}
	for i, h := range hashes {
		index[h] = i
	}
	for _, h := range missing {
		stored, err := c.Put(t.Context(), h, bytes.NewReader(files[index[h]]), size)
		require.NoError(t, err)
		require.True(t, stored)
	}
	moved := f.bodyBytes.Load()
	ratio := float64(moved) / float64(total)
	t.Logf("100 files x %d KiB, 90 stored: %d of %d bytes moved (%.1f%%)", size>>10, moved, total, 100*ratio)
	require.InDelta(t, 0.10, ratio, 0.005)

	missing, err = c.Missing(t.Context(), hashes)
	require.NoError(t, err)
	require.Empty(t, missing, "all stored now")
	ok, err := c.Exists(t.Context(), hashes[0])
	require.NoError(t, err)
	require.True(t, ok)
	_, err = c.Put(t.Context(), hashes[0], bytes.NewReader(files[1]), size)
	require.NoError(t, err, "already stored: 200 before the body is read")
	_, err = c.Put(t.Context(), cas.SumBytes([]byte("x")), strings.NewReader("y"), 1)
	require.ErrorContains(t, err, "400")

	var req struct {
		Hashes []cas.Hash `json:"hashes"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"hashes":["`+hashes[0].String()+`"]}`), &req), "the batch body is plain JSON")
}

// TestUploadTouchesBeforeAnswering: every "already stored" answer (HEAD
// 200, a hash left out of the batch's missing list, PUT 200) runs the
// Store's put hook (Store.Touch: a garbage collector's guard) before the
// existence check, so a blob deleted by a collection that the touch did
// not stop is reported missing, never stored. The hook here deletes the
// blob, as a collection finishing just before the touch would.
func TestUploadTouchesBeforeAnswering(t *testing.T) {
	t.Parallel()
	b := memstore.New()
	var touched []cas.Hash
	var collect atomic.Bool
	store := cas.New(b, cas.WithPutHook(func(ctx context.Context, h cas.Hash) error {
		touched = append(touched, h)
		if collect.Load() {
			return b.Delete(ctx, h.Key())
		}
		return nil
	}))
	h := cashttp.NewUploadHandler(store)
	srv := httptest.NewServer(http.StripPrefix("/u", h))
	t.Cleanup(srv.Close)
	p := testutil.Bytes(71, 5000)
	res, err := store.Put(t.Context(), bytes.NewReader(p))
	require.NoError(t, err)
	hash := res.Hash
	do := func(method, path string, body []byte) (int, string) {
		req, err := http.NewRequest(method, srv.URL+"/u"+path, bytes.NewReader(body))
		require.NoError(t, err)
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(out)
	}
	batch := []byte(fmt.Sprintf(`{"hashes":[%q]}`, hash))

	// Without a collection, each answer says "stored" after a touch.
	touched = nil
	code, _ := do(http.MethodHead, "/"+hash.String(), nil)
	require.Equal(t, http.StatusOK, code)
	code, body := do(http.MethodPost, "/missing", batch)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"missing":[]}`, body)
	code, _ = do(http.MethodPut, "/"+hash.String(), p)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []cas.Hash{hash, hash, hash}, touched[:3], "HEAD, the batch and PUT each touch the blob")

	// The blob goes during the touch: HEAD and the batch say missing.
	collect.Store(true)
	code, _ = do(http.MethodHead, "/"+hash.String(), nil)
	require.Equal(t, http.StatusNotFound, code, "HEAD checked before it touched")
	_, err = store.Put(t.Context(), bytes.NewReader(p)) // the hook deletes first, then Put stores
	require.NoError(t, err)
	code, body = do(http.MethodPost, "/missing", batch)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, fmt.Sprintf(`{"missing":[%q]}`, hash), body, "the batch checked before it touched")
	// PUT: the touch deletes, the Stat finds nothing, the body is stored.
	code, _ = do(http.MethodPut, "/"+hash.String(), p)
	require.Equal(t, http.StatusCreated, code)
}
