package cashttp_test

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// oneByteRanges is "bytes=0-0,2-2,4-4,..." with n one-byte ranges.
var oneByteRanges = cashttp.ManyRanges

// TestRangeAmplification: the review's request, 85,000 one-byte ranges of
// a 100 KB blob, returned 12.7 MB for 3.8 s of CPU. It is a 416 with a
// short body now, for content and thumbnails alike, and so is any request
// for more than MaxRanges ranges; MaxRanges ranges are still served.
func TestRangeAmplification(t *testing.T) {
	t.Parallel()
	data := testutil.Bytes(5, 100_000)
	jpeg := append(imagetest.JPEG(64, 64), make([]byte, 100_000)...) // a 100 KB "thumbnail"
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return jpeg, nil }}
	f := newFixture(t, memstore.New(), cashttp.WithThumbnails(tf))
	h := f.put(t, data)
	hd := cashttp.NewHandler(f.store, cashttp.WithThumbnails(tf))

	for _, target := range []string{urls.Inline(h, "application/octet-stream"), urls.Thumbnail(h, 64)} {
		size := len(data)
		if strings.Contains(target, "thumbnail=") {
			size = len(jpeg)
		}
		// Without a network: no header size limit in the way.
		// (The work is bounded by the answer: a 416 of under 100 bytes, not
		// 85,000 parts; no wall-clock bound, which a loaded CI would break.)
		rec := serve(hd, http.MethodGet, target, "Range", oneByteRanges(85_000))
		requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusRequestedRangeNotSatisfiable)
		require.Equal(t, fmt.Sprintf("bytes */%d", size), rec.Header().Get("Content-Range"))
		require.Less(t, rec.Body.Len(), 100)

		// Through a server: 2,000 ranges (a 19 KB header), and MaxRanges+1.
		for _, n := range []int{2000, cashttp.MaxRanges + 1} {
			res := f.do(t, http.MethodGet, target, "Range", oneByteRanges(n))
			requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusRequestedRangeNotSatisfiable)
			require.Less(t, len(res.body), 100)
		}

		// MaxRanges ranges: 206 multipart, each part one byte.
		res := f.do(t, http.MethodGet, target, "Range", oneByteRanges(cashttp.MaxRanges))
		require.Equal(t, http.StatusPartialContent, res.StatusCode)
		require.Equal(t, cashttp.CacheControl, res.Header.Get("Cache-Control"))
		mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "multipart/byteranges", mt)
		mr := multipart.NewReader(bytes.NewReader(res.body), params["boundary"])
		parts := 0
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", 2*parts, 2*parts, size), p.Header.Get("Content-Range"))
			parts++
		}
		require.Equal(t, cashttp.MaxRanges, parts)
	}
}

// TestRangeHostileHeaders: hostile Range headers through a real server:
// each is refused with 416 and Content-Range: bytes */<size>, ignored
// (200, the whole blob), or served as exactly the canonical ranges.
func TestRangeHostileHeaders(t *testing.T) {
	t.Parallel()
	data := testutil.Bytes(6, 1000)
	f := newFixture(t, memstore.New())
	h := f.put(t, data)
	target := urls.Inline(h, "application/octet-stream")
	tests := []struct {
		name   string
		ranges []string
		status int
		cr     string // Content-Range of a single-part answer
		body   []byte // nil: not checked
	}{
		{"bytes=-0", []string{"bytes=-0"}, 416, "bytes */1000", nil},
		{"bytes=-0,-0", []string{"bytes=-0,-0"}, 416, "bytes */1000", nil},
		{"bytes=-1", []string{"bytes=-1"}, 206, "bytes 999-999/1000", data[999:]},
		{"overlapping", []string{"bytes=0-9,5-14"}, 416, "bytes */1000", nil},
		{"identical", []string{"bytes=0-0,0-0"}, 416, "bytes */1000", nil},
		{"whole thrice", []string{"bytes=0-,0-,0-"}, 416, "bytes */1000", nil},
		{"unsorted disjoint", []string{"bytes=500-509,0-9"}, 206, "", nil},
		{"unknown unit", []string{"items=0-9"}, 200, "", data},
		{"uppercase unit", []string{"Bytes=0-9"}, 206, "bytes 0-9/1000", data[:10]},
		{"inner whitespace", []string{"bytes=0 - 9"}, 416, "bytes */1000", nil},
		{"OWS around comma", []string{"bytes=0-9 , 20-29"}, 206, "", nil},
		{"negative", []string{"bytes=-5-9"}, 416, "bytes */1000", nil},
		{"overflow first", []string{"bytes=18446744073709551616-"}, 416, "bytes */1000", nil},
		{"overflow last", []string{"bytes=990-18446744073709551616"}, 206, "bytes 990-999/1000", data[990:]},
		{"overflow suffix", []string{"bytes=-18446744073709551616"}, 206, "bytes 0-999/1000", data},
		{"two Range fields", []string{"bytes=0-9", "bytes=10-19"}, 416, "bytes */1000", nil},
		{"two units in one field", []string{"bytes=0-9, items=10-19"}, 416, "bytes */1000", nil},
		{"long header", []string{"bytes=0-9" + strings.Repeat(",", 3000)}, 416, "bytes */1000", nil},
		{"past the end", []string{"bytes=1000-"}, 416, "bytes */1000", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			for _, v := range tt.ranges {
				hdr = append(hdr, "Range", v)
			}
			res := f.do(t, http.MethodGet, target, hdr...)
			require.Equal(t, tt.status, res.StatusCode, "%s", res.body)
			switch tt.status {
			case http.StatusRequestedRangeNotSatisfiable:
				requireErrorResponse(t, res.StatusCode, res.Header, res.body, tt.status)
				require.Equal(t, tt.cr, res.Header.Get("Content-Range"))
			case http.StatusPartialContent:
				require.Equal(t, tt.cr, res.Header.Get("Content-Range"))
			}
			if tt.body != nil {
				require.True(t, bytes.Equal(tt.body, res.body), "body differs")
			}
		})
	}
}

// TestRangeGuardAfterPreconditions: the guard applies only when
// ServeContent would honour the Range: not under an If-Range that does not
// match, and not before a 304 or a 412.
func TestRangeGuardAfterPreconditions(t *testing.T) {
	t.Parallel()
	data := testutil.Bytes(7, 1000)
	f := newFixture(t, memstore.New())
	h := f.put(t, data)
	etag := `"` + h.String() + `"`
	target := urls.Inline(h, "application/octet-stream")
	hostile := oneByteRanges(500)

	res := f.do(t, http.MethodGet, target, "Range", hostile, "If-Range", `"stale"`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, bytes.Equal(data, res.body))

	res = f.do(t, http.MethodGet, target, "Range", hostile, "If-Range", etag)
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusRequestedRangeNotSatisfiable)

	res = f.do(t, http.MethodGet, target, "Range", "bytes=-0", "If-Range", etag)
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusRequestedRangeNotSatisfiable)
	require.Equal(t, "bytes */1000", res.Header.Get("Content-Range"))

	res = f.do(t, http.MethodGet, target, "Range", "bytes=0-9", "If-Range", etag)
	require.Equal(t, http.StatusPartialContent, res.StatusCode)
	require.True(t, bytes.Equal(data[:10], res.body))

	res = f.do(t, http.MethodGet, target, "Range", hostile, "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, res.StatusCode)

	res = f.do(t, http.MethodGet, target, "Range", hostile, "If-Match", `"other"`)
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusPreconditionFailed)

	res = f.do(t, http.MethodHead, target, "Range", hostile)
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, res.StatusCode)
	require.Empty(t, res.body)
}

// TestRangeEmptyBlob: an empty blob has no satisfiable range; it is
// served whole (200, empty), as net/http serves it, whatever the Range.
func TestRangeEmptyBlob(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memstore.New())
	h := f.put(t, nil)
	for _, v := range []string{"bytes=0-", "bytes=-0", "bytes=-5", oneByteRanges(100)} {
		res := f.do(t, http.MethodGet, urls.Inline(h, "text/plain"), "Range", v)
		require.Equal(t, http.StatusOK, res.StatusCode, v)
		require.Empty(t, res.body)
	}
}

// TestRangeThumbnailBytesMinusZero: thumbnails go through the same guard.
func TestRangeThumbnailBytesMinusZero(t *testing.T) {
	t.Parallel()
	jpeg := imagetest.JPEG(32, 32)
	tf := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return jpeg, nil }}
	f := newFixture(t, memstore.New(), cashttp.WithThumbnails(tf))
	h := cas.SumBytes([]byte("img"))
	res := f.do(t, http.MethodGet, urls.Thumbnail(h, 32), "Range", "bytes=-0")
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusRequestedRangeNotSatisfiable)
	require.Equal(t, fmt.Sprintf("bytes */%d", len(jpeg)), res.Header.Get("Content-Range"))
	res = f.do(t, http.MethodGet, urls.Thumbnail(h, 32), "Range", "bytes=0-1,1-2")
	requireErrorResponse(t, res.StatusCode, res.Header, res.body, http.StatusRequestedRangeNotSatisfiable)
	res = f.do(t, http.MethodGet, urls.Thumbnail(h, 32), "Range", "bytes=-2")
	require.Equal(t, http.StatusPartialContent, res.StatusCode)
	require.Equal(t, jpeg[len(jpeg)-2:], res.body)
}
