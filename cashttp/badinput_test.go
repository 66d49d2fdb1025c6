package cashttp_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

var goodHex = cas.SumBytes([]byte("stored")).String()

// malformed are request targets that must get 400 without touching storage.
var malformed = []struct{ name, target string }{
	// hashes of every wrong shape
	{"no hash", "/api/cas/?content_type=a/b"},
	{"prefix only", "/api/cas?content_type=a/b"},
	{"uppercase hash", "/api/cas/" + strings.ToUpper(goodHex) + "?content_type=a/b"},
	{"mixed case hash", "/api/cas/A" + goodHex[1:] + "?content_type=a/b"},
	{"63 hex", "/api/cas/" + goodHex[:63] + "?content_type=a/b"},
	{"65 hex", "/api/cas/" + goodHex + "a?content_type=a/b"},
	{"128 hex", "/api/cas/" + goodHex + goodHex + "?content_type=a/b"},
	{"non-hex", "/api/cas/" + goodHex[:63] + "x?content_type=a/b"},
	{"uuid", "/api/cas/2f1c7e0a-8d6b-4c1e-9b0a-3e5f7d9c1a2b?content_type=a/b"},
	{"extension", "/api/cas/" + goodHex + ".png?content_type=a/b"},
	{"trailing slash", "/api/cas/" + goodHex + "/?content_type=a/b"},
	{"NUL in hash", "/api/cas/" + goodHex[:63] + "%00?content_type=a/b"},
	{"space in hash", "/api/cas/" + goodHex[:63] + "%20?content_type=a/b"},
	{"unicode hash", "/api/cas/" + goodHex[:62] + "%C3%A9?content_type=a/b"},
	{"percent-encoded hex", "/api/cas/%" + goodHex[:2] + goodHex[2:] + "?content_type=a/b"},
	// path traversal
	{"dot dot", "/api/cas/..?content_type=a/b"},
	{"traversal", "/api/cas/../../etc/passwd?content_type=a/b"},
	{"traversal after hash", "/api/cas/" + goodHex + "/../../etc/passwd?content_type=a/b"},
	{"encoded traversal", "/api/cas/%2e%2e%2f%2e%2e%2fetc%2fpasswd?content_type=a/b"},
	{"encoded slash before hash", "/api/cas/x%2F" + goodHex + "?content_type=a/b"},
	{"backslash traversal", "/api/cas/..%5C..%5C" + goodHex + "?content_type=a/b"},
	// parameters
	{"neither", "/api/cas/" + goodHex},
	{"empty query", "/api/cas/" + goodHex + "?"},
	{"both", "/api/cas/" + goodHex + "?content_type=a/b&thumbnail=10"},
	{"repeated content_type", "/api/cas/" + goodHex + "?content_type=text/plain&content_type=text/html"},
	{"repeated thumbnail", "/api/cas/" + goodHex + "?thumbnail=10&thumbnail=20"},
	{"repeated disposition", "/api/cas/" + goodHex + "?content_type=a/b&disposition=inline&disposition=attachment"},
	{"repeated filename", "/api/cas/" + goodHex + "?content_type=a/b&filename=a&filename=b"},
	{"repeated sig", "/api/cas/" + goodHex + "?content_type=a/b&sig=a&sig=b"},
	{"empty content_type", "/api/cas/" + goodHex + "?content_type="},
	{"empty thumbnail", "/api/cas/" + goodHex + "?thumbnail="},
	{"empty filename", "/api/cas/" + goodHex + "?content_type=a/b&filename="},
	{"empty disposition", "/api/cas/" + goodHex + "?content_type=a/b&disposition="},
	{"empty sig", "/api/cas/" + goodHex + "?content_type=a/b&sig="},
	{"bare key", "/api/cas/" + goodHex + "?content_type"},
	{"unknown parameter", "/api/cas/" + goodHex + "?content_type=a/b&download=1"},
	{"zero thumbnail", "/api/cas/" + goodHex + "?thumbnail=0"},
	{"negative thumbnail", "/api/cas/" + goodHex + "?thumbnail=-100"},
	{"huge thumbnail", "/api/cas/" + goodHex + "?thumbnail=99999999999999999999999"},
	{"over max thumbnail", "/api/cas/" + goodHex + "?thumbnail=1001"},
	{"large thumbnail", "/api/cas/" + goodHex + "?thumbnail=100000000"},
	{"float thumbnail", "/api/cas/" + goodHex + "?thumbnail=1.5"},
	{"exponent thumbnail", "/api/cas/" + goodHex + "?thumbnail=1e3"},
	{"hex thumbnail", "/api/cas/" + goodHex + "?thumbnail=0x40"},
	{"word thumbnail", "/api/cas/" + goodHex + "?thumbnail=small"},
	{"signed thumbnail", "/api/cas/" + goodHex + "?thumbnail=%2B64"},
	{"spaced thumbnail", "/api/cas/" + goodHex + "?thumbnail=%2064"},
	{"leading zero thumbnail", "/api/cas/" + goodHex + "?thumbnail=064"},
	{"thumbnail with filename", "/api/cas/" + goodHex + "?thumbnail=64&filename=a.jpg"},
	{"CRLF in filename", "/api/cas/" + goodHex + "?content_type=a/b&filename=a%0D%0ASet-Cookie:%20x=1"},
	{"LF in filename", "/api/cas/" + goodHex + "?content_type=a/b&filename=a%0Ab"},
	{"NUL in filename", "/api/cas/" + goodHex + "?content_type=a/b&filename=a%00b"},
	{"long filename", "/api/cas/" + goodHex + "?content_type=a/b&filename=" + strings.Repeat("n", 300)},
	{"invalid UTF-8 filename", "/api/cas/" + goodHex + "?content_type=a/b&filename=%C3%28"},
	{"CRLF in content_type", "/api/cas/" + goodHex + "?content_type=text/html%0D%0AX-XSS:%201"},
	{"NUL in content_type", "/api/cas/" + goodHex + "?content_type=text/html%00"},
	{"no subtype", "/api/cas/" + goodHex + "?content_type=text"},
	{"slash only", "/api/cas/" + goodHex + "?content_type=/"},
	{"empty subtype", "/api/cas/" + goodHex + "?content_type=text/"},
	{"bad mime parameter", "/api/cas/" + goodHex + "?content_type=text/plain%3B%20charset"},
	{"unknown disposition", "/api/cas/" + goodHex + "?content_type=a/b&disposition=form-data"},
	{"disposition with params", "/api/cas/" + goodHex + "?content_type=a/b&disposition=attachment%3B%20filename%3Dx"},
	{"oversized query", "/api/cas/" + goodHex + "?content_type=a/b&filename=" + strings.Repeat("%41", 2000)},
	{"huge query", "/api/cas/" + goodHex + "?content_type=a/b&x=" + strings.Repeat("y", 200_000)},
	{"semicolon separator", "/api/cas/" + goodHex + "?content_type=a/b;filename=x"},
	{"bad escape", "/api/cas/" + goodHex + "?content_type=a%2/b"},
}

// TestMalformedRequests: every malformed request is a 4xx with the error
// headers, never a 5xx or a panic, and reaches neither storage nor the
// Thumbnailer. It runs on the bare Handler and through a real server.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	require.GreaterOrEqual(t, len(malformed), 40)
	counts := faulty.New(memstore.New())
	store := cas.New(counts)
	_, err := store.Put(context.Background(), strings.NewReader("stored"))
	require.NoError(t, err)
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return nil, nil }}
	h := cashttp.NewHandler(store, cashttp.WithThumbnails(tf))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	counts.Reset()

	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + tt.target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
				require.NoError(t, err)
				rec := httptest.NewRecorder()
				require.NotPanics(t, func() { h.ServeHTTP(rec, req) })
				require.Equal(t, http.StatusBadRequest, rec.Code, "%s %s: %s", method, tt.target, rec.Body.String())
				if method == http.MethodGet {
					requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusBadRequest)
				}
			}
			res := doURL(t, srv.Client(), http.MethodGet, srv.URL+tt.target)
			require.GreaterOrEqual(t, res.StatusCode, 400, tt.target)
			require.Less(t, res.StatusCode, 500, tt.target)
			require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
		})
	}
	require.Zero(t, counts.Calls(faulty.MethodOpen)+counts.Calls(faulty.MethodStat), "malformed requests reach no storage")
	require.Zero(t, tf.Calls(), "malformed requests reach no Thumbnailer")
}

// FuzzServeHTTP sends arbitrary request targets to a Handler: no panic, no
// 5xx (storage works), and a success only for a parseable request.
func FuzzServeHTTP(f *testing.F) {
	for _, tt := range malformed {
		f.Add(http.MethodGet, tt.target, "")
	}
	f.Add(http.MethodGet, urls.Inline(cas.SumBytes([]byte("stored")), "image/png"), "")
	f.Add(http.MethodHead, urls.Download(cas.SumBytes([]byte("stored")), "text/html", "x\".html"), "bytes=0-1")
	f.Add(http.MethodGet, urls.Thumbnail(cas.SumBytes([]byte("stored")), 64), "")
	f.Add(http.MethodPost, "/x", "bytes=-1")
	content := urls.Inline(cas.SumBytes([]byte("stored")), "a/b")
	for _, v := range []string{"bytes=-0", "bytes=0-0,0-0", "bytes=0-0,2-2,4-4", "bytes=99999999999999999999-",
		"bytes=0-99999999999999999999", "items=0-1", "bytes=0 -1", "BYTES=1-2, 3-4", oneByteRanges(40)} {
		f.Add(http.MethodGet, content, v)
	}

	store := cas.New(memstore.New())
	if _, err := store.Put(context.Background(), strings.NewReader("stored")); err != nil {
		f.Fatal(err)
	}
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return []byte("jpeg"), nil }}
	h := cashttp.NewHandler(store, cashttp.WithThumbnails(tf))
	f.Fuzz(func(t *testing.T, method, target, rangeHdr string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			return
		}
		if rangeHdr != "" && !strings.ContainsAny(rangeHdr, "\r\n") {
			req.Header.Set("Range", rangeHdr)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", method, target, rec.Code, rec.Body.String())
		}
		if rec.Code < 300 && rec.Header().Get("ETag") == "" {
			t.Fatalf("%s %q: success without ETag", method, target)
		}
		if rec.Code >= 400 && rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s %q: error %d is cacheable", method, target, rec.Code)
		}
		// Whatever the Range, the answer stays small: at most MaxRanges
		// parts of a 6-byte blob or a 4-byte thumbnail.
		if rec.Code == http.StatusPartialContent && rec.Body.Len() > 6+cashttp.MaxRanges*200 {
			t.Fatalf("Range %q: a %d-byte answer", rangeHdr, rec.Body.Len())
		}
		if rec.Code == http.StatusRequestedRangeNotSatisfiable && !strings.HasPrefix(rec.Header().Get("Content-Range"), "bytes */") {
			t.Fatalf("Range %q: 416 with Content-Range %q", rangeHdr, rec.Header().Get("Content-Range"))
		}
	})
}
