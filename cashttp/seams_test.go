package cashttp_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/thumbnail"
)

// TestNoImageDependencies: cashttp reaches thumbnails only through the
// Thumbnailer interface and the cas sentinels, so a server that serves
// only blobs links no image decoder and no thumbnail package. go list
// -deps without -test lists the package's build dependencies only (its
// tests may import thumbnail).
func TestNoImageDependencies(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to list cashttp's dependencies")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", "github.com/casa-go/casa/cashttp").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/casa-go/casa/cas", "the listing is cashttp's")
	require.Contains(t, deps, "github.com/casa-go/casa/casurl", "the listing is cashttp's")
	for _, d := range deps {
		isImage := d == "image" || strings.HasPrefix(d, "image/") || strings.Contains(d, "/image/") || strings.HasSuffix(d, "/image")
		require.False(t, isImage, "cashttp depends on the image package %s", d)
		require.NotContains(t, d, "thumbnail", "cashttp depends on %s", d)
	}
	// Within casa, cashttp imports cas and casurl only.
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/casa-go/casa/") {
			require.Contains(t, []string{"github.com/casa-go/casa/cas", "github.com/casa-go/casa/casurl", "github.com/casa-go/casa/cashttp"}, d)
		}
	}
}

// TestThumbnailErrorsWrapContract: thumbnail's errors about the source
// image wrap the cas sentinels that cashttp maps, keep their own
// messages, and stay distinct from each other.
func TestThumbnailErrorsWrapContract(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err, sentinel error
		msg           string
	}{
		{thumbnail.ErrUnsupported, cas.ErrUnsupported, "thumbnail: unsupported image format"},
		{thumbnail.ErrTooLarge, cas.ErrTooLarge, "thumbnail: image too large"},
		{thumbnail.ErrCorrupt, cas.ErrCorrupt, "thumbnail: corrupt image data"},
		{thumbnail.ErrTimeout, cas.ErrCorrupt, "thumbnail: generation took too long"},
	} {
		require.ErrorIs(t, tt.err, tt.sentinel)
		require.Equal(t, tt.msg, tt.err.Error())
	}
	require.NotErrorIs(t, thumbnail.ErrTimeout, thumbnail.ErrCorrupt, "a timeout is not a corrupt image: it is never cached")
	require.NotErrorIs(t, thumbnail.ErrCorrupt, thumbnail.ErrTimeout)
	require.NotErrorIs(t, thumbnail.ErrInvalidSize, cas.ErrCorrupt)
}

// fileBackend is a memstore whose Objects are cas.FileObjects over a
// temporary copy of their bytes: a Backend other than fsstore that
// offers its files. Its Objects are no syscall.Conn themselves.
type fileBackend struct{ *memstore.Backend }

type fileObject struct {
	f    *os.File
	info cas.Info
}

func (o *fileObject) Read(p []byte) (int, error)                { return o.f.Read(p) }
func (o *fileObject) Seek(off int64, whence int) (int64, error) { return o.f.Seek(off, whence) }
func (o *fileObject) Close() error                              { return o.f.Close() }
func (o *fileObject) Info() cas.Info                            { return o.info }
func (o *fileObject) File() *os.File                            { return o.f }

func (b fileBackend) Open(ctx context.Context, key string) (cas.Object, error) {
	obj, err := b.Backend.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	f, err := os.CreateTemp("", "cashttp-fileobject-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name())
	if _, err := io.Copy(f, obj); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &fileObject{f: f, info: obj.Info()}, nil
}

// TestSendfileThroughFileObject: the sendfile path is the cas.FileObject
// contract, not a promise between fsstore and cashttp: any Backend whose
// Objects implement it gets its file handed to ReadFrom.
func TestSendfileThroughFileObject(t *testing.T) {
	t.Parallel()
	var obj cas.Object = &fileObject{}
	_, isConn := obj.(syscall.Conn)
	require.False(t, isConn, "the Object itself offers no syscall.Conn")
	store := cas.New(fileBackend{memstore.New()})
	data := testutil.Bytes(11, 40<<10)
	res, err := store.Put(context.Background(), bytes.NewReader(data))
	require.NoError(t, err)
	w := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	req := httptest.NewRequest(http.MethodGet, urls.Inline(res.Hash, "application/octet-stream"), nil)
	req.Header.Set("Range", "bytes=100-")
	cashttp.NewHandler(store).ServeHTTP(w, req)
	require.Equal(t, http.StatusPartialContent, w.Code)
	require.True(t, bytes.Equal(data[100:], w.Body.Bytes()))
	require.Len(t, w.srcs, 1)
	lr, ok := w.srcs[0].(*io.LimitedReader)
	require.True(t, ok, "got %T", w.srcs[0])
	_, isConn = lr.R.(syscall.Conn)
	require.True(t, isConn, "the FileObject's file reaches ReadFrom as a syscall.Conn, got %T", lr.R)
}

// TestServeHash: a route that keeps the hash somewhere ServeHTTP does not
// look (here a {id} wildcard followed by a filename) passes it in.
func TestServeHash(t *testing.T) {
	t.Parallel()
	store, h := storeWith(t, []byte("served by hash"))
	signer := casurl.NewSigner([]byte("k"))
	hd := cashttp.NewHandler(store)
	signed := cashttp.NewHandler(store, cashttp.WithSigner(signer))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/{id}/{name}", func(w http.ResponseWriter, r *http.Request) {
		hd.ServeHash(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("GET /signed/{id}/{name}", func(w http.ResponseWriter, r *http.Request) {
		signed.ServeHash(w, r, r.PathValue("id"))
	})
	rec := serve(mux, http.MethodGet, "/files/"+h.String()+"/report.txt?content_type=text/plain")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "served by hash", rec.Body.String())
	require.Equal(t, `"`+h.String()+`"`, rec.Header().Get("ETag"))

	// ServeHTTP on the same route would take the filename for the hash.
	mux.Handle("GET /plain/{id}/{name}", hd)
	rec = serve(mux, http.MethodGet, "/plain/"+h.String()+"/report.txt?content_type=text/plain")
	require.Equal(t, http.StatusBadRequest, rec.Code)

	rec = serve(mux, http.MethodGet, "/files/"+strings.ToUpper(h.String())+"/report.txt?content_type=text/plain")
	requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusBadRequest)

	// Hostile hashes from a router's parameter: all 400.
	for _, bad := range []string{
		"", " ", h.String() + " ", " " + h.String(), h.String()[:63], h.String() + "0",
		h.String() + "/x", "../" + h.String(), "%2e%2e%2f", strings.Replace(h.String(), "a", "%61", 1),
		h.String()[:63] + "\x00", "cas/" + h.String(), strings.Repeat("0", 1<<16),
	} {
		rec := httptest.NewRecorder()
		hd.ServeHash(rec, httptest.NewRequest(http.MethodGet, "/x?content_type=text/plain", nil), bad)
		requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusBadRequest)
	}

	// Signing covers the hash that ServeHash is given.
	u, err := casurl.Builder{Prefix: "/x", Signer: signer}.Inline(h, "text/plain")
	require.NoError(t, err)
	query := u[strings.IndexByte(u, '?'):]
	rec = serve(mux, http.MethodGet, "/signed/"+h.String()+"/a.txt"+query)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	other := cas.SumBytes([]byte("other"))
	rec = serve(mux, http.MethodGet, "/signed/"+other.String()+"/a.txt"+query)
	requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusForbidden)
}

// TestErrorHeadersOneList: an error from the handler itself (404) and one
// that ServeContent writes under the guard (412) strip the same success
// headers.
func TestErrorHeadersOneList(t *testing.T) {
	t.Parallel()
	store, h := storeWith(t, []byte("<p>x</p>"))
	hd := cashttp.NewHandler(store)
	successOnly := []string{"ETag", "Content-Disposition", "Content-Security-Policy", "Accept-Ranges", "Content-Encoding", "Content-Length"}
	for _, rec := range []*httptest.ResponseRecorder{
		serve(hd, http.MethodGet, urls.Download(cas.SumBytes([]byte("missing")), "text/html", "a.html")),
		serve(hd, http.MethodGet, urls.Download(h, "text/html", "a.html"), "If-Match", `"other"`),
	} {
		require.GreaterOrEqual(t, rec.Code, 400)
		for _, k := range successOnly {
			require.Empty(t, rec.Header().Values(k), "%d response carries %s", rec.Code, k)
		}
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	}
}
