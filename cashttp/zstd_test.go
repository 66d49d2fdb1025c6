package cashttp_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// TestServeZstd: a blob stored compressed goes to a client that accepts
// zstd, without a Range, as its stored frames (Content-Encoding: zstd, a
// distinct ETag, the stored length), which a real zstd decoder turns into
// the blob; every other request gets the decoded bytes; both carry Vary:
// Accept-Encoding, and a 304 for either ETag makes no backend call.
func TestServeZstd(t *testing.T) {
	t.Parallel()
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, be.New(t))
			data := testutil.Text(1, 3<<20+777)
			res, err := cas.New(f.counts, cas.WithCompression(cas.Compression{})).Put(context.Background(), bytes.NewReader(data))
			require.NoError(t, err)
			h := res.Hash
			info, err := f.store.Stat(context.Background(), h)
			require.NoError(t, err)
			require.Equal(t, cas.EncodingZstd, info.Encoding)
			plain := f.put(t, testutil.Bytes(2, 50_000))
			url := urls.Inline(h, "text/plain")
			identity, zst := `"`+h.String()+`"`, `"`+h.String()+`-zstd"`

			t.Run("zstd pass-through", func(t *testing.T) {
				r := f.do(t, http.MethodGet, url, "Accept-Encoding", "gzip, zstd")
				require.Equal(t, http.StatusOK, r.StatusCode)
				require.Equal(t, "zstd", r.Header.Get("Content-Encoding"))
				require.Equal(t, zst, r.Header.Get("ETag"))
				require.Equal(t, "Accept-Encoding", r.Header.Get("Vary"))
				require.Equal(t, strconv.FormatInt(info.StoredSize, 10), r.Header.Get("Content-Length"))
				require.EqualValues(t, info.StoredSize, len(r.body))
				// A streaming decoder, as a browser's, reads it whole.
				dec, err := zstd.NewReader(bytes.NewReader(r.body))
				require.NoError(t, err)
				defer dec.Close()
				got, err := io.ReadAll(dec)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got), "decoded body differs")
			})
			t.Run("HEAD zstd", func(t *testing.T) {
				r := f.do(t, http.MethodHead, url, "Accept-Encoding", "zstd")
				require.Equal(t, http.StatusOK, r.StatusCode)
				require.Equal(t, "zstd", r.Header.Get("Content-Encoding"))
				require.Equal(t, strconv.FormatInt(info.StoredSize, 10), r.Header.Get("Content-Length"))
			})
			for _, ae := range []string{"", "identity", "gzip, br", "zstd;q=0", "*;q=0", "zstd;q=0, *", "zstd;q=1.5", "zstd;q=0.0000"} {
				t.Run("identity for "+strconv.Quote(ae), func(t *testing.T) {
					r := f.do(t, http.MethodGet, url, "Accept-Encoding", ae)
					require.Equal(t, http.StatusOK, r.StatusCode)
					require.Empty(t, r.Header.Get("Content-Encoding"))
					require.Equal(t, identity, r.Header.Get("ETag"))
					require.Equal(t, "Accept-Encoding", r.Header.Get("Vary"))
					require.Equal(t, strconv.Itoa(len(data)), r.Header.Get("Content-Length"))
					require.True(t, bytes.Equal(data, r.body), "body differs")
				})
			}
			t.Run("Range decodes", func(t *testing.T) {
				r := f.do(t, http.MethodGet, url, "Accept-Encoding", "zstd", "Range", "bytes=1500000-1500999")
				require.Equal(t, http.StatusPartialContent, r.StatusCode)
				require.Empty(t, r.Header.Get("Content-Encoding"))
				require.Equal(t, identity, r.Header.Get("ETag"))
				require.Equal(t, data[1500000:1501000], r.body)
			})
			t.Run("304 for either ETag without backend calls", func(t *testing.T) {
				for _, c := range []struct{ ae, inm, etag string }{
					{"zstd", zst, zst},
					{"zstd", `W/` + zst, zst},
					{"zstd", `"x", ` + identity, identity},
					{"", identity, identity},
				} {
					f.counts.Reset()
					r := f.do(t, http.MethodGet, url, "Accept-Encoding", c.ae, "If-None-Match", c.inm)
					require.Equal(t, http.StatusNotModified, r.StatusCode, c.inm)
					require.Equal(t, c.etag, r.Header.Get("ETag"))
					require.Equal(t, "Accept-Encoding", r.Header.Get("Vary"))
					require.Zero(t, f.backendCalls(), "backend calls: %v", f.counts.Counts())
				}
				// A client that does not accept zstd cannot use a zstd copy.
				f.counts.Reset()
				r := f.do(t, http.MethodGet, url, "If-None-Match", zst)
				require.Equal(t, http.StatusOK, r.StatusCode)
				require.Equal(t, identity, r.Header.Get("ETag"))
				require.Equal(t, 1, f.counts.Calls(faulty.MethodOpen))
			})
			t.Run("plain blob", func(t *testing.T) {
				r := f.do(t, http.MethodGet, urls.Inline(plain, "text/plain"), "Accept-Encoding", "zstd")
				require.Equal(t, http.StatusOK, r.StatusCode)
				require.Empty(t, r.Header.Get("Content-Encoding"))
				require.Equal(t, `"`+plain.String()+`"`, r.Header.Get("ETag"))
				require.Equal(t, "Accept-Encoding", r.Header.Get("Vary"))
			})
		})
	}
}

// TestAcceptsZstd: Accept-Encoding is parsed with its q-values; q=0
// refuses, a malformed q-value does not accept.
func TestAcceptsZstd(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		hdr  []string
		want bool
	}{
		{nil, false},
		{[]string{"zstd"}, true},
		{[]string{"ZSTD"}, true},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"gzip", "zstd;q=0.5"}, true},
		{[]string{"zstd;q=0"}, false},
		{[]string{"zstd; q=0.000"}, false},
		{[]string{"zstd;q=0.001"}, true},
		{[]string{"zstd;Q=1.000"}, true},
		{[]string{"zstd;q=1.001"}, false},
		{[]string{"zstd;q=2"}, false},
		{[]string{"zstd;q=.5"}, false},
		{[]string{"zstd;q=0.5000"}, false},
		{[]string{"zstd;q="}, false},
		{[]string{"zstd;q=0.5;q=1"}, false},
		{[]string{"zstd;level=3"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*, zstd;q=0"}, false},
		{[]string{"zstd;q=0", "zstd"}, false},
		{[]string{"zstd, *;q=0"}, true},
		{[]string{"gzip;q=1, identity"}, false},
		{[]string{"zstdx, xzstd"}, false},
		{[]string{" zstd ; q = 0.8 "}, true},
		{[]string{string(bytes.Repeat([]byte("a, "), 400)) + "zstd"}, false},
	} {
		r, err := http.NewRequest(http.MethodGet, "/", nil)
		require.NoError(t, err)
		for _, v := range c.hdr {
			r.Header.Add("Accept-Encoding", v)
		}
		require.Equal(t, c.want, cashttp.AcceptsZstd(r), "%q", c.hdr)
	}
}

// FuzzAcceptsZstd: no header panics the parser, and an explicit zstd;q=0
// at the end always refuses.
func FuzzAcceptsZstd(f *testing.F) {
	for _, s := range []string{"zstd", "zstd;q=0", "*;q=0.5", "gzip, zstd;q=1.000", "zstd;q=0.5;q=1", ";;,,=", "\x00zstd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := http.NewRequest(http.MethodGet, "/", nil)
		require.NoError(t, err)
		r.Header.Set("Accept-Encoding", s)
		_ = cashttp.AcceptsZstd(r)
		if len(s) < 1000 {
			r.Header.Set("Accept-Encoding", s+", zstd;q=0")
			require.False(t, cashttp.AcceptsZstd(r))
		}
	})
}
