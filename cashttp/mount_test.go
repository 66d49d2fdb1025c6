package cashttp_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

func storeWith(t *testing.T, data []byte) (*cas.Store, cas.Hash) {
	t.Helper()
	s := cas.New(memstore.New())
	res, err := s.Put(context.Background(), bytes.NewReader(data))
	require.NoError(t, err)
	return s, res.Hash
}

func TestMountServeMuxPattern(t *testing.T) {
	t.Parallel()
	store, h := storeWith(t, []byte("mounted"))
	mux := http.NewServeMux()
	mux.Handle("GET /api/cas/{hash}", cashttp.NewHandler(store))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	res := doURL(t, srv.Client(), http.MethodGet, srv.URL+urls.Inline(h, "text/plain"))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "mounted", string(res.body))
	res = doURL(t, srv.Client(), http.MethodHead, srv.URL+urls.Inline(h, "text/plain"))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "7", res.Header.Get("Content-Length"))
	// The mux answers other methods for this pattern itself.
	res = doURL(t, srv.Client(), http.MethodPost, srv.URL+urls.Inline(h, "text/plain"))
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
}

func TestMountPathValueNotLastSegment(t *testing.T) {
	t.Parallel()
	// The hash comes from {hash} even when it is not the last segment.
	store, h := storeWith(t, []byte("by path value"))
	mux := http.NewServeMux()
	mux.Handle("GET /files/{hash}/raw", cashttp.NewHandler(store))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/files/"+h.String()+"/raw?content_type=text/plain", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "by path value", rec.Body.String())
}

func TestMountStripPrefix(t *testing.T) {
	t.Parallel()
	store, h := storeWith(t, []byte("stripped"))
	mux := http.NewServeMux()
	mux.Handle("/static/blobs/", http.StripPrefix("/static/blobs/", cashttp.NewHandler(store)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := testURLs{casurl.Builder{Prefix: "/static/blobs"}}
	res := doURL(t, srv.Client(), http.MethodGet, srv.URL+b.Download(h, "text/plain", "s.txt"))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "stripped", string(res.body))
	require.Equal(t, `attachment; filename="s.txt"; filename*=UTF-8''s.txt`, res.Header.Get("Content-Disposition"))

	// Signed URLs survive the prefix being stripped.
	signer := casurl.NewSigner([]byte("k"))
	mux2 := http.NewServeMux()
	mux2.Handle("/p/", http.StripPrefix("/p", cashttp.NewHandler(store, cashttp.WithSigner(signer))))
	rec := httptest.NewRecorder()
	mux2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, testURLs{casurl.Builder{Prefix: "/p", Signer: signer}}.Inline(h, "text/plain"), nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	data := []byte("0123456789")
	store, h := storeWith(t, data)
	thumbJPEG := imagetest.JPEG(8, 8)
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return thumbJPEG, nil }}
	hd := cashttp.NewHandler(store, cashttp.WithMeterProvider(mp), cashttp.WithThumbnails(tf))

	require.Equal(t, 200, serve(hd, http.MethodGet, urls.Inline(h, "text/plain")).Code)
	require.Equal(t, 200, serve(hd, http.MethodGet, urls.Inline(h, "text/plain")).Code)
	require.Equal(t, 206, serve(hd, http.MethodGet, urls.Inline(h, "text/plain"), "Range", "bytes=0-3").Code)
	require.Equal(t, 304, serve(hd, http.MethodGet, urls.Inline(h, "text/plain"), "If-None-Match", `"`+h.String()+`"`).Code)
	require.Equal(t, 404, serve(hd, http.MethodGet, urls.Inline(cas.SumBytes(nil), "text/plain")).Code)
	require.Equal(t, 200, serve(hd, http.MethodGet, urls.Thumbnail(h, 8)).Code)
	// A thumbnail request that parses but asks for a size not served.
	require.Equal(t, 400, serve(hd, http.MethodGet, urls.Thumbnail(h, cashttp.DefaultMaxThumbnailSize+1)).Code)
	// The kind comes from the parsed request: a request that does not
	// parse is "invalid", whatever its query looks like.
	require.Equal(t, 400, serve(hd, http.MethodGet, "/api/cas/"+h.String()+"?thumbnail=0").Code)
	require.Equal(t, 400, serve(hd, http.MethodGet, "/api/cas/"+h.String()+"?content_type=text/plain&thumbnail=8").Code)
	require.Equal(t, 405, serve(hd, http.MethodPost, urls.Thumbnail(h, 8)).Code)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	type key struct {
		kind string
		code int64
	}
	requests := map[key]int64{}
	durations := map[key]uint64{}
	bytesByKind := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, "github.com/casa-go/casa/cashttp", sm.Scope.Name)
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					kind, _ := p.Attributes.Value(attribute.Key("kind"))
					code, _ := p.Attributes.Value(attribute.Key("http.response.status_code"))
					switch m.Name {
					case "casa.http.requests":
						requests[key{kind.AsString(), code.AsInt64()}] += p.Value
					case "casa.http.bytes":
						require.Equal(t, "By", m.Unit)
						bytesByKind[kind.AsString()] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				require.Equal(t, "casa.http.duration", m.Name)
				require.Equal(t, "s", m.Unit)
				for _, p := range d.DataPoints {
					kind, _ := p.Attributes.Value(attribute.Key("kind"))
					code, _ := p.Attributes.Value(attribute.Key("http.response.status_code"))
					durations[key{kind.AsString(), code.AsInt64()}] += p.Count
					require.Greater(t, p.Sum, 0.0)
				}
			}
		}
	}
	want := map[key]int64{
		{"content", 200}: 2, {"content", 206}: 1, {"content", 304}: 1, {"content", 404}: 1,
		{"thumbnail", 400}: 1, {"thumbnail", 200}: 1,
		{"invalid", 400}: 2, {"invalid", 405}: 1,
	}
	require.Equal(t, want, requests)
	for k, n := range want {
		require.Equal(t, uint64(n), durations[k], "%v", k)
	}
	// Body bytes of successful responses: two full bodies and a 4-byte range.
	require.Equal(t, map[string]int64{"content": int64(2*len(data) + 4), "thumbnail": int64(len(thumbJPEG))}, bytesByKind)
}
