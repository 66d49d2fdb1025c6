package cashttp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

var urls = testURLs{}

func TestServeContent(t *testing.T) {
	t.Parallel()
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, be.New(t))
			data := testutil.Bytes(1, 100_000)
			h := f.put(t, data)

			t.Run("200 with headers", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"))
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.True(t, bytes.Equal(data, res.body), "body differs")
				require.Equal(t, "image/png", res.Header.Get("Content-Type"))
				require.Equal(t, strconv.Itoa(len(data)), res.Header.Get("Content-Length"))
				require.Equal(t, `"`+h.String()+`"`, res.Header.Get("ETag"))
				require.Equal(t, "public, max-age=31536000, immutable", res.Header.Get("Cache-Control"))
				require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
				require.Equal(t, "bytes", res.Header.Get("Accept-Ranges"))
				require.Empty(t, res.Header.Get("Content-Disposition"))
				require.Empty(t, res.Header.Get("Content-Security-Policy"))
				require.Empty(t, res.Header.Get("Last-Modified"))
			})
			t.Run("content type exactly as asked", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(h, "text/plain; charset=ISO-8859-1"))
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.Equal(t, "text/plain; charset=ISO-8859-1", res.Header.Get("Content-Type"))
			})
			t.Run("attachment", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Download(h, "application/pdf", "x"))
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.Equal(t, `attachment; filename="x"; filename*=UTF-8''x`, res.Header.Get("Content-Disposition"))
				require.True(t, bytes.Equal(data, res.body))
			})
			t.Run("HEAD", func(t *testing.T) {
				res := f.do(t, http.MethodHead, urls.Inline(h, "image/png"))
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.Empty(t, res.body)
				require.Equal(t, strconv.Itoa(len(data)), res.Header.Get("Content-Length"))
				require.Equal(t, `"`+h.String()+`"`, res.Header.Get("ETag"))
				require.Equal(t, "image/png", res.Header.Get("Content-Type"))
				require.Equal(t, cashttp.CacheControl, res.Header.Get("Cache-Control"))
			})
			t.Run("304 without backend calls", func(t *testing.T) {
				for _, inm := range []string{
					`"` + h.String() + `"`,
					`W/"` + h.String() + `"`,
					`"other", "` + h.String() + `"`,
				} {
					f.counts.Reset()
					res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "If-None-Match", inm)
					require.Equal(t, http.StatusNotModified, res.StatusCode, inm)
					require.Empty(t, res.body)
					require.Equal(t, `"`+h.String()+`"`, res.Header.Get("ETag"))
					require.Equal(t, cashttp.CacheControl, res.Header.Get("Cache-Control"))
					require.Zero(t, f.backendCalls(), "backend calls: %v", f.counts.Counts())
				}
				// Not even for a blob that does not exist: the ETag is the name.
				missing := cas.SumBytes([]byte("never stored"))
				f.counts.Reset()
				res := f.do(t, http.MethodHead, urls.Inline(missing, "a/b"), "If-None-Match", `"`+missing.String()+`"`)
				require.Equal(t, http.StatusNotModified, res.StatusCode)
				require.Zero(t, f.backendCalls())
			})
			t.Run("If-None-Match other etag", func(t *testing.T) {
				f.counts.Reset()
				res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "If-None-Match", `"`+cas.SumBytes(nil).String()+`"`)
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.True(t, bytes.Equal(data, res.body))
				require.Equal(t, 1, f.counts.Calls(faulty.MethodOpen))
			})
			t.Run("If-None-Match star", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "If-None-Match", "*")
				require.Equal(t, http.StatusNotModified, res.StatusCode)
				res = f.do(t, http.MethodGet, urls.Inline(cas.SumBytes([]byte("nope")), "image/png"), "If-None-Match", "*")
				requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusNotFound)
			})
			t.Run("Range", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "Range", "bytes=100-299")
				require.Equal(t, http.StatusPartialContent, res.StatusCode)
				require.Equal(t, fmt.Sprintf("bytes 100-299/%d", len(data)), res.Header.Get("Content-Range"))
				require.Equal(t, "200", res.Header.Get("Content-Length"))
				require.True(t, bytes.Equal(data[100:300], res.body))
				require.Equal(t, cashttp.CacheControl, res.Header.Get("Cache-Control"))

				res = f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "Range", "bytes=-10")
				require.Equal(t, http.StatusPartialContent, res.StatusCode)
				require.True(t, bytes.Equal(data[len(data)-10:], res.body))
			})
			t.Run("If-Range", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "Range", "bytes=0-9", "If-Range", `"`+h.String()+`"`)
				require.Equal(t, http.StatusPartialContent, res.StatusCode)
				require.True(t, bytes.Equal(data[:10], res.body))
				res = f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "Range", "bytes=0-9", "If-Range", `"stale"`)
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.True(t, bytes.Equal(data, res.body))
			})
			t.Run("unsatisfiable range", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "Range", fmt.Sprintf("bytes=%d-", len(data)+5))
				require.Equal(t, http.StatusRequestedRangeNotSatisfiable, res.StatusCode)
				require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
				require.Empty(t, res.Header.Get("ETag"))
				// RFC 9110, 15.5.17: a 416 names the current length.
				require.Equal(t, fmt.Sprintf("bytes */%d", len(data)), res.Header.Get("Content-Range"))
			})
			t.Run("404", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Inline(cas.SumBytes([]byte("missing")), "image/png"))
				requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusNotFound)
			})
			t.Run("thumbnail without Thumbnailer is 404", func(t *testing.T) {
				res := f.do(t, http.MethodGet, urls.Thumbnail(h, 100))
				requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusNotFound)
			})
			t.Run("405", func(t *testing.T) {
				for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "PROPFIND"} {
					res := f.do(t, m, urls.Inline(h, "image/png"))
					requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusMethodNotAllowed)
					require.Equal(t, "GET, HEAD", res.Header.Get("Allow"))
				}
			})
		})
	}
}

func TestEmptyBlob(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memstore.New())
	h := f.put(t, nil)
	res := f.do(t, http.MethodGet, urls.Inline(h, "text/plain"))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, res.body)
	require.Equal(t, "0", res.Header.Get("Content-Length"))
	require.Equal(t, `"`+h.String()+`"`, res.Header.Get("ETag"))
}

func TestThumbnails(t *testing.T) {
	t.Parallel()
	photoJPEG := imagetest.JPEG(320, 240)
	bombJPEG := imagetest.JPEG(400, 300) // over the 100 kP limit below
	corruptJPEG := imagetest.Corrupt(imagetest.JPEG(64, 64))
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f := newFixtureFunc(t, be.New(t), func(s *cas.Store) []cashttp.Option {
				return []cashttp.Option{cashttp.WithThumbnails(thumbnail.NewService(s, thumbnail.WithMaxPixels(100_000)))}
			})
			photo := f.put(t, photoJPEG)
			pdf := f.put(t, imagetest.PDF())
			bomb := f.put(t, bombJPEG)
			corrupt := f.put(t, corruptJPEG)

			res := f.do(t, http.MethodGet, urls.Thumbnail(photo, 100))
			require.Equal(t, http.StatusOK, res.StatusCode, "%s", res.body)
			require.Equal(t, "image/jpeg", res.Header.Get("Content-Type"))
			require.Equal(t, fmt.Sprintf(`"%s-t100"`, photo), res.Header.Get("ETag"))
			require.Equal(t, cashttp.CacheControl, res.Header.Get("Cache-Control"))
			require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
			require.Equal(t, strconv.Itoa(len(res.body)), res.Header.Get("Content-Length"))
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(res.body))
			require.NoError(t, err)
			require.Equal(t, 100, max(cfg.Width, cfg.Height))

			// 304 with no generation and no storage call.
			f.counts.Reset()
			res = f.do(t, http.MethodGet, urls.Thumbnail(photo, 100), "If-None-Match", fmt.Sprintf(`"%s-t100"`, photo))
			require.Equal(t, http.StatusNotModified, res.StatusCode)
			require.Equal(t, fmt.Sprintf(`"%s-t100"`, photo), res.Header.Get("ETag"))
			require.Zero(t, f.backendCalls())
			// The content ETag does not validate a thumbnail.
			res = f.do(t, http.MethodGet, urls.Thumbnail(photo, 100), "If-None-Match", `"`+photo.String()+`"`)
			require.Equal(t, http.StatusOK, res.StatusCode)

			res = f.do(t, http.MethodHead, urls.Thumbnail(photo, 50))
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Empty(t, res.body)
			require.NotEqual(t, "", res.Header.Get("Content-Length"))

			for _, tt := range []struct {
				name   string
				h      cas.Hash
				status int
			}{
				{"not an image", pdf, http.StatusUnsupportedMediaType},
				{"over the pixel limit", bomb, http.StatusUnsupportedMediaType},
				{"corrupt image", corrupt, http.StatusInternalServerError},
				{"missing blob", cas.SumBytes([]byte("nothing")), http.StatusNotFound},
			} {
				res := f.do(t, http.MethodGet, urls.Thumbnail(tt.h, 100))
				requireErrorResponse(t, res.StatusCode, res.Header, res.body, tt.status)
			}
			// The corrupt image is a bad upload, logged as such, not as a storage failure.
			require.Contains(t, f.logs.String(), `level=WARN msg="cashttp: bad source image" hash=`+corrupt.String())
			require.NotContains(t, f.logs.String(), "level=ERROR")
		})
	}
}

func TestThumbnailErrors(t *testing.T) {
	t.Parallel()
	secret := errors.New("s3: AccessDenied for arn:aws:s3:::secret-bucket")
	tests := []struct {
		err    error
		status int
		logged bool
	}{
		{fmt.Errorf("x: %w", thumbnail.ErrUnsupported), http.StatusUnsupportedMediaType, false},
		{fmt.Errorf("x: %w", thumbnail.ErrTooLarge), http.StatusUnsupportedMediaType, false},
		{fmt.Errorf("x: %w", cas.ErrNotFound), http.StatusNotFound, false},
		{secret, http.StatusInternalServerError, true},
		{fmt.Errorf("wrapped: %w", faulty.ErrInjected), http.StatusInternalServerError, true},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			t.Parallel()
			tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return nil, tt.err }}
			f := newFixture(t, memstore.New(), cashttp.WithThumbnails(tf))
			res := f.do(t, http.MethodGet, urls.Thumbnail(cas.SumBytes([]byte("a")), 10))
			requireErrorResponse(t, res.StatusCode, res.Header, res.body, tt.status)
			require.NotContains(t, string(res.body), "secret")
			require.NotContains(t, string(res.body), "wrapped")
			require.Equal(t, 1, tf.Calls())
			if tt.logged {
				require.Contains(t, f.logs.String(), "level=ERROR")
				require.Contains(t, f.logs.String(), tt.err.Error())
			} else {
				require.NotContains(t, f.logs.String(), "level=ERROR")
			}
		})
	}
}

func TestThumbnailerPanicIs500(t *testing.T) {
	t.Parallel()
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { panic("decoder exploded: secret detail") }}
	f := newFixture(t, memstore.New(), cashttp.WithThumbnails(tf))
	res := f.do(t, http.MethodGet, urls.Thumbnail(cas.SumBytes([]byte("a")), 10))
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusInternalServerError)
	require.NotContains(t, string(res.body), "secret")
	require.Contains(t, f.logs.String(), "decoder exploded", "the panic is logged")
}

func TestThumbnailSizes(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("img"))
	ok := func(context.Context, cas.Hash, int) ([]byte, error) { return imagetest.JPEG(8, 8), nil }
	tests := []struct {
		name   string
		opts   []cashttp.Option
		size   int
		status int
	}{
		{"1", nil, 1, http.StatusOK},
		{"default max", nil, cashttp.DefaultMaxThumbnailSize, http.StatusOK},
		{"over default max", nil, cashttp.DefaultMaxThumbnailSize + 1, http.StatusBadRequest},
		{"huge", nil, 999_999_999, http.StatusBadRequest},
		{"custom max", []cashttp.Option{cashttp.WithMaxThumbnailSize(200)}, 200, http.StatusOK},
		{"over custom max", []cashttp.Option{cashttp.WithMaxThumbnailSize(200)}, 201, http.StatusBadRequest},
		{"allow-listed", []cashttp.Option{cashttp.WithThumbnailSizes(256, 64)}, 256, http.StatusOK},
		{"not allow-listed", []cashttp.Option{cashttp.WithThumbnailSizes(64, 256)}, 100, http.StatusBadRequest},
		{"allow-list beats max", []cashttp.Option{cashttp.WithMaxThumbnailSize(100), cashttp.WithThumbnailSizes(64, 2000)}, 2000, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tf := &thumbFunc{f: ok}
			hd := cashttp.NewHandler(cas.New(memstore.New()), append([]cashttp.Option{cashttp.WithThumbnails(tf)}, tt.opts...)...)
			rec := serve(hd, http.MethodGet, urls.Thumbnail(h, tt.size))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status == http.StatusOK {
				require.Equal(t, 1, tf.Calls())
				require.Equal(t, fmt.Sprintf(`"%s-t%d"`, h, tt.size), rec.Header().Get("ETag"))
			} else {
				require.Zero(t, tf.Calls(), "rejected sizes reach no Thumbnailer")
				requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), tt.status)
			}
		})
	}
}

func TestBackendFailure(t *testing.T) {
	t.Parallel()
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, be.New(t))
			h := f.put(t, testutil.Bytes(2, 5000))
			f.counts.SetError(errors.New("disk /srv/secret/path on fire"))
			f.counts.FailNth(faulty.MethodOpen, 1)
			res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"))
			requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusInternalServerError)
			require.NotContains(t, string(res.body), "secret")
			require.NotContains(t, string(res.body), "fire")
			require.Contains(t, f.logs.String(), "level=ERROR")
			require.Contains(t, f.logs.String(), "on fire")
			// The next request succeeds: nothing was left broken.
			res = f.do(t, http.MethodGet, urls.Inline(h, "image/png"))
			require.Equal(t, http.StatusOK, res.StatusCode)
		})
	}
}

func TestReadFailureMidResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memstore.New())
	data := testutil.Bytes(3, 200_000)
	h := f.put(t, data)
	f.counts.SetReadFailAfter(50_000)
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+urls.Inline(h, "application/octet-stream"), nil)
	require.NoError(t, err)
	res, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "the status went out before the failure")
	var got bytes.Buffer
	_, err = got.ReadFrom(res.Body)
	require.Error(t, err, "a truncated body must not look complete")
	require.Less(t, got.Len(), len(data))
	require.Eventually(t, func() bool { return strings.Contains(f.logs.String(), "read failed mid-response") },
		5e9, 1e7)
}

func TestScriptCapableTypes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memstore.New())
	h := f.put(t, []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"/>`))
	tests := []struct {
		ct, disp, filename string
		active             bool
		wantCD             string
	}{
		{"text/html", "", "", true, "attachment"},
		{"text/html; charset=utf-8", "inline", "", true, "attachment"},
		{"TEXT/HTML", "", "", true, "attachment"},
		{"application/xhtml+xml", "", "", true, "attachment"},
		{"image/svg+xml", "inline", "logo.svg", true, `attachment; filename="logo.svg"; filename*=UTF-8''logo.svg`},
		{"text/xml", "", "", true, "attachment"},
		{"application/xml", "", "", true, "attachment"},
		{"application/rss+xml", "", "", true, "attachment"},
		{"application/mathml+xml", "", "", true, "attachment"},
		{"text/xsl", "", "", true, "attachment"},
		{"application/javascript", "", "", true, "attachment"},
		{"text/javascript", "", "", true, "attachment"},
		{"application/ecmascript", "", "", true, "attachment"},
		{"application/x-shockwave-flash", "", "", true, "attachment"},
		{"multipart/x-mixed-replace; boundary=x", "", "", true, "attachment"},
		{"message/rfc822", "", "", true, "attachment"},
		{"image/png", "", "", false, ""},
		{"image/png", "inline", "a.png", false, `inline; filename="a.png"; filename*=UTF-8''a.png`},
		{"application/pdf", "", "", false, ""},
		{"text/plain", "", "", false, ""},
		{"text/csv", "attachment", "", false, "attachment"},
		{"application/octet-stream", "", "", false, ""},
		{"image/jpeg", "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.ct+"/"+tt.disp, func(t *testing.T) {
			u := urls.URL(casurl.Request{Hash: h, ContentType: tt.ct, Disposition: tt.disp, Filename: tt.filename})
			res := f.do(t, http.MethodGet, u)
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, tt.ct, res.Header.Get("Content-Type"), "served exactly as asked")
			require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
			if tt.active {
				require.Equal(t, "sandbox", res.Header.Get("Content-Security-Policy"))
			} else {
				require.Empty(t, res.Header.Get("Content-Security-Policy"))
			}
			require.Equal(t, tt.wantCD, res.Header.Get("Content-Disposition"))
		})
	}
}

func TestContentDisposition(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memstore.New())
	h := f.put(t, []byte("x"))
	tests := []struct {
		name, filename, want string
	}{
		{"plain", "report.pdf", `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`},
		{"space", "data sheet.pdf", `attachment; filename="data sheet.pdf"; filename*=UTF-8''data%20sheet.pdf`},
		{"umlaut", "Prüfbericht.pdf", `attachment; filename="Pr_fbericht.pdf"; filename*=UTF-8''Pr%C3%BCfbericht.pdf`},
		{"cjk", "報告.pdf", `attachment; filename="__.pdf"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.pdf`},
		{"emoji", "📷.jpg", `attachment; filename="_.jpg"; filename*=UTF-8''%F0%9F%93%B7.jpg`},
		{"quotes", `a"b".pdf`, `attachment; filename="a_b_.pdf"; filename*=UTF-8''a%22b%22.pdf`},
		{"quote breakout", `x"; filename="evil.html`, `attachment; filename="x__ filename=_evil.html"; filename*=UTF-8''x%22%3B%20filename%3D%22evil.html`},
		{"semicolon", "a;b.txt", `attachment; filename="a_b.txt"; filename*=UTF-8''a%3Bb.txt`},
		{"slash", "../../etc/passwd", `attachment; filename=".._.._etc_passwd"; filename*=UTF-8''.._.._etc_passwd`},
		{"backslash", `..\..\boot.ini`, `attachment; filename=".._.._boot.ini"; filename*=UTF-8''.._.._boot.ini`},
		{"percent", "100%.txt", `attachment; filename="100_.txt"; filename*=UTF-8''100%25.txt`},
		{"encoded-looking", "a%0d%0ab.txt", `attachment; filename="a_0d_0ab.txt"; filename*=UTF-8''a%250d%250ab.txt`},
		{"single quote", "it's.txt", `attachment; filename="it's.txt"; filename*=UTF-8''it%27s.txt`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := f.do(t, http.MethodGet, urls.Download(h, "application/octet-stream", tt.filename))
			require.Equal(t, http.StatusOK, res.StatusCode)
			cd := res.Header.Get("Content-Disposition")
			require.Equal(t, tt.want, cd)
			require.NotContains(t, cd, "\r")
			require.NotContains(t, cd, "\n")
			require.Equal(t, 2, strings.Count(cd, `"`), "exactly one quoted string")
		})
	}
	// CR/LF and other controls never get this far: they are a 400.
	for _, name := range []string{"a\r\nSet-Cookie: x=1", "a\nb", "a\x00b", "a\tb"} {
		res := f.do(t, http.MethodGet, urls.Download(h, "application/octet-stream", name))
		requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusBadRequest)
		require.Empty(t, res.Header.Get("Set-Cookie"))
	}
}

func TestSigning(t *testing.T) {
	t.Parallel()
	signer := casurl.NewSigner([]byte("new key"), []byte("old key"))
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return imagetest.JPEG(8, 8), nil }}
	f := newFixture(t, memstore.New(), cashttp.WithSigner(signer), cashttp.WithThumbnails(tf))
	h := f.put(t, []byte("<b>hi</b>"))
	signed := testURLs{casurl.Builder{Signer: signer}}
	oldSigned := testURLs{casurl.Builder{Signer: casurl.NewSigner([]byte("old key"))}}
	foreign := testURLs{casurl.Builder{Signer: casurl.NewSigner([]byte("attacker"))}}

	okURLs := []string{
		signed.Inline(h, "text/plain"),
		signed.Download(h, "text/plain", "hi.txt"),
		signed.Thumbnail(h, 100),
		oldSigned.Inline(h, "text/plain"),
	}
	for _, u := range okURLs {
		res := f.do(t, http.MethodGet, u)
		require.Equal(t, http.StatusOK, res.StatusCode, u)
	}
	inline := signed.Inline(h, "text/plain")
	forbidden := []string{
		urls.Inline(h, "text/plain"), // unsigned
		strings.Replace(inline, "text%2Fplain", "text%2Fhtml", 1),
		strings.Replace(signed.Thumbnail(h, 100), "thumbnail=100", "thumbnail=999", 1),
		foreign.Inline(h, "text/plain"),
		inline[:len(inline)-1] + "A",
	}
	for _, u := range forbidden {
		res := f.do(t, http.MethodGet, u)
		requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusForbidden)
	}
	require.Equal(t, 1, tf.Calls(), "forged thumbnail sizes generate nothing")
	// A malformed request is a 400 whether or not it is signed.
	res := f.do(t, http.MethodGet, "/api/cas/"+h.String()+"?thumbnail=0&sig=x")
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusBadRequest)
}

func TestRealThumbnailServiceCoalescedThroughHandler(t *testing.T) {
	t.Parallel()
	// Concurrent requests for one thumbnail under -race: every one 200 with
	// the same bytes.
	f := newFixtureFunc(t, memstore.New(), func(s *cas.Store) []cashttp.Option {
		return []cashttp.Option{cashttp.WithThumbnails(thumbnail.NewService(s))}
	})
	h := f.put(t, imagetest.PNG(300, 200))
	const n = 8
	bodies := make(chan []byte, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			res, err := f.srv.Client().Get(f.srv.URL + urls.Thumbnail(h, 64))
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var buf bytes.Buffer
			_, err = buf.ReadFrom(res.Body)
			if err == nil && res.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", res.StatusCode)
			}
			errs <- err
			bodies <- buf.Bytes()
		}()
	}
	var first []byte
	for range n {
		require.NoError(t, <-errs)
	}
	for range n {
		b := <-bodies
		if first == nil {
			first = b
		}
		require.True(t, bytes.Equal(first, b))
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(first))
	require.NoError(t, err)
	require.Equal(t, 64, cfg.Width)
}

// seekFaultBackend wraps a real Backend; its objects fail seeks to a
// non-zero offset with an error text that must not reach the client.
type seekFaultBackend struct{ cas.Backend }

func (b seekFaultBackend) Open(ctx context.Context, key string) (cas.Object, error) {
	o, err := b.Backend.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return seekFaultObject{o}, nil
}

type seekFaultObject struct{ cas.Object }

func (o seekFaultObject) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart && off > 0 {
		return 0, errors.New("seek s3://secret-bucket/key: connection reset")
	}
	return o.Object.Seek(off, whence)
}

func TestSeekFailureIsGeneric500(t *testing.T) {
	t.Parallel()
	f := newFixture(t, seekFaultBackend{memstore.New()})
	h := f.put(t, testutil.Bytes(4, 4096))
	res := f.do(t, http.MethodGet, urls.Inline(h, "image/png"), "Range", "bytes=100-200")
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusInternalServerError)
	require.Equal(t, "internal server error\n", string(res.body))
	require.Empty(t, res.Header.Get("Content-Range"))
	require.Contains(t, f.logs.String(), "secret-bucket", "the cause is logged")
	// Without a Range the same object serves fine.
	res = f.do(t, http.MethodGet, urls.Inline(h, "image/png"))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Len(t, res.body, 4096)
}

func TestCanceledRequest(t *testing.T) {
	t.Parallel()
	counts := faulty.New(memstore.New(), faulty.WithLatency(time.Minute))
	hd := cashttp.NewHandler(cas.New(counts))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, urls.Inline(cas.SumBytes([]byte("x")), "a/b"), nil)
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusServiceUnavailable)
	// The store's checked layer sees the dead context before the backend
	// is called at all.
	require.Equal(t, 0, counts.Calls(faulty.MethodOpen))
}
