package routers_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/routers"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

var mounts = []struct {
	name  string
	mount func(*cashttp.Handler) http.Handler
}{
	{"chi", routers.Chi},
	{"gin", routers.Gin},
	{"echo", routers.Echo},
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, srv *httptest.Server, method, target string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{res.StatusCode, res.Header, body}
}

func storeWith(t *testing.T, data []byte) (*cas.Store, cas.Hash) {
	t.Helper()
	s := cas.New(memstore.New())
	res, err := s.Put(context.Background(), bytes.NewReader(data))
	require.NoError(t, err)
	return s, res.Hash
}

// TestMounted: through each router, mounted as the README shows, GET
// gets the bytes, HEAD the headers without a body, If-None-Match a 304,
// a bad hash or query 400, and with signing on a tampered URL 403.
func TestMounted(t *testing.T) {
	data := []byte("hello, routers")
	store, h := storeWith(t, data)
	signer := casurl.NewSigner([]byte("secret"))
	urls := casurl.Builder{}
	signedURLs := casurl.Builder{Signer: signer}
	etag := `"` + h.String() + `"`
	for _, m := range mounts {
		t.Run(m.name, func(t *testing.T) {
			srv := httptest.NewServer(m.mount(cashttp.NewHandler(store)))
			t.Cleanup(srv.Close)

			res := do(t, srv, http.MethodGet, mustURL(t)(urls.Inline(h, "text/plain")))
			require.Equal(t, http.StatusOK, res.status)
			require.Equal(t, data, res.body)
			require.Equal(t, etag, res.header.Get("ETag"))
			require.Equal(t, "text/plain", res.header.Get("Content-Type"))

			res = do(t, srv, http.MethodHead, mustURL(t)(urls.Inline(h, "text/plain")))
			require.Equal(t, http.StatusOK, res.status)
			require.Equal(t, strconv.Itoa(len(data)), res.header.Get("Content-Length"))
			require.Equal(t, etag, res.header.Get("ETag"))
			require.Empty(t, res.body)

			res = do(t, srv, http.MethodGet, mustURL(t)(urls.Inline(h, "text/plain")), "If-None-Match", etag)
			require.Equal(t, http.StatusNotModified, res.status)
			require.Empty(t, res.body)

			res = do(t, srv, http.MethodGet, mustURL(t)(urls.Download(h, "text/plain", "a.txt")), "Range", "bytes=0-4")
			require.Equal(t, http.StatusPartialContent, res.status)
			require.Equal(t, "hello", string(res.body))

			res = do(t, srv, http.MethodGet, "/api/cas/"+strings.ToUpper(h.String())+"?content_type=text/plain")
			require.Equal(t, http.StatusBadRequest, res.status)
			require.Equal(t, "no-store", res.header.Get("Cache-Control"))
			res = do(t, srv, http.MethodGet, "/api/cas/"+h.String()+"?content_type=text/plain&thumbnail=8")
			require.Equal(t, http.StatusBadRequest, res.status)
			res = do(t, srv, http.MethodGet, mustURL(t)(urls.Inline(cas.SumBytes([]byte("missing")), "text/plain")))
			require.Equal(t, http.StatusNotFound, res.status)

			signed := httptest.NewServer(m.mount(cashttp.NewHandler(store, cashttp.WithSigner(signer))))
			t.Cleanup(signed.Close)
			u := mustURL(t)(signedURLs.Inline(h, "text/plain"))
			res = do(t, signed, http.MethodGet, u)
			require.Equal(t, http.StatusOK, res.status)
			require.Equal(t, data, res.body)
			res = do(t, signed, http.MethodHead, u)
			require.Equal(t, http.StatusOK, res.status)
			require.Empty(t, res.body)
			res = do(t, signed, http.MethodGet, strings.Replace(u, "text%2Fplain", "text%2Fhtml", 1))
			require.Equal(t, http.StatusForbidden, res.status, "a tampered content type")
			res = do(t, signed, http.MethodGet, mustURL(t)(urls.Inline(h, "text/plain")))
			require.Equal(t, http.StatusForbidden, res.status, "no signature")
		})
	}
}

// withName turns a casurl URL /files/<hash>?query into the
// /files/<hash>/<name>?query of a route that carries a filename.
func withName(u, name string) string {
	path, query, _ := strings.Cut(u, "?")
	return path + "/" + name + "?" + query
}

// TestGinFilesRoute: gin's /files/:hash/:name, where the hash is not the
// last segment, works through ServeHash, signed or not.
func TestGinFilesRoute(t *testing.T) {
	data := []byte("%PDF-1.7 manual")
	store, h := storeWith(t, data)
	signer := casurl.NewSigner([]byte("secret"))
	for _, tt := range []struct {
		name    string
		opts    []cashttp.Option
		builder casurl.Builder
	}{
		{"unsigned", nil, casurl.Builder{Prefix: "/files"}},
		{"signed", []cashttp.Option{cashttp.WithSigner(signer)}, casurl.Builder{Prefix: "/files", Signer: signer}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(routers.Gin(cashttp.NewHandler(store, tt.opts...)))
			t.Cleanup(srv.Close)
			u := withName(mustURL(t)(tt.builder.Download(h, "application/pdf", "manual.pdf")), "manual.pdf")

			res := do(t, srv, http.MethodGet, u)
			require.Equal(t, http.StatusOK, res.status, string(res.body))
			require.Equal(t, data, res.body)
			require.Equal(t, `attachment; filename="manual.pdf"; filename*=UTF-8''manual.pdf`, res.header.Get("Content-Disposition"))

			res = do(t, srv, http.MethodHead, u)
			require.Equal(t, http.StatusOK, res.status)
			require.Equal(t, strconv.Itoa(len(data)), res.header.Get("Content-Length"))
			require.Empty(t, res.body)

			res = do(t, srv, http.MethodGet, u, "If-None-Match", `"`+h.String()+`"`)
			require.Equal(t, http.StatusNotModified, res.status)

			other := cas.SumBytes([]byte("other"))
			bad := strings.Replace(u, h.String(), other.String(), 1)
			res = do(t, srv, http.MethodGet, bad)
			if tt.opts == nil {
				require.Equal(t, http.StatusNotFound, res.status)
			} else {
				require.Equal(t, http.StatusForbidden, res.status, "the signature covers the hash ServeHash is given")
			}
			res = do(t, srv, http.MethodGet, strings.Replace(u, h.String(), "not-a-hash", 1))
			require.Equal(t, http.StatusBadRequest, res.status)
		})
	}
}

// TestHEADNeedsRegistering proves the README's warning: with only GET
// registered, gin answers HEAD with 404, echo and chi with 405.
func TestHEADNeedsRegistering(t *testing.T) {
	store, h := storeWith(t, []byte("x"))
	hd := cashttp.NewHandler(store)
	c := chi.NewRouter()
	c.Get("/api/cas/{hash}", hd.ServeHTTP)
	g := gin.New()
	g.GET("/api/cas/:hash", gin.WrapH(hd))
	e := echo.New()
	e.GET("/api/cas/:hash", echo.WrapHandler(hd))
	for _, tt := range []struct {
		name   string
		router http.Handler
		head   int
	}{
		{"chi", c, http.StatusMethodNotAllowed},
		{"gin", g, http.StatusNotFound},
		{"echo", e, http.StatusMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.router)
			t.Cleanup(srv.Close)
			u := mustURL(t)(casurl.Builder{}.Inline(h, "text/plain"))
			require.Equal(t, http.StatusOK, do(t, srv, http.MethodGet, u).status)
			require.Equal(t, tt.head, do(t, srv, http.MethodHead, u).status)
		})
	}
}

// TestREADMEShowsTheseSnippets: each snippet that mount.go marks appears
// verbatim in README.md, so the README shows the code these tests run.
func TestREADMEShowsTheseSnippets(t *testing.T) {
	src, err := os.ReadFile("mount.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, name := range []string{"chi", "gin", "echo"} {
		_, rest, ok := strings.Cut(string(src), "\t// README "+name+"\n")
		require.True(t, ok, "mount.go marks the %s snippet", name)
		body, _, ok := strings.Cut(rest, "\t// END\n")
		require.True(t, ok, "the %s snippet ends", name)
		var snippet strings.Builder
		for line := range strings.Lines(body) {
			snippet.WriteString(strings.TrimPrefix(line, "\t"))
		}
		require.Contains(t, string(readme), "```go\n"+snippet.String()+"```\n", "README.md shows the %s snippet of mount.go", name)
	}
}

// mustURL takes a casurl.Builder result and fails t on its error.
func mustURL(t *testing.T) func(string, error) string {
	return func(u string, err error) string {
		t.Helper()
		require.NoError(t, err)
		return u
	}
}
