package cashttp

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// manyRanges is "bytes=0-0,2-2,4-4,..." with n one-byte ranges.
func manyRanges(n int) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", 2*i, 2*i)
	}
	return b.String()
}

type rangeCase struct {
	name   string
	fields []string
	want   []byteRange // nil with err == nil: ignored
	err    error
}

// hostileRanges are Range headers for a representation of 1000 bytes.
var hostileRanges = []rangeCase{
	// well-formed
	{"single", []string{"bytes=0-9"}, []byteRange{{0, 9}}, nil},
	{"open-ended", []string{"bytes=990-"}, []byteRange{{990, 999}}, nil},
	{"suffix", []string{"bytes=-10"}, []byteRange{{990, 999}}, nil},
	{"suffix longer than the blob", []string{"bytes=-5000"}, []byteRange{{0, 999}}, nil},
	{"last past the end clamps", []string{"bytes=900-5000"}, []byteRange{{900, 999}}, nil},
	{"two ranges", []string{"bytes=0-9,20-29"}, []byteRange{{0, 9}, {20, 29}}, nil},
	{"adjacent ranges do not overlap", []string{"bytes=0-9,10-19"}, []byteRange{{0, 9}, {10, 19}}, nil},
	{"unsorted disjoint ranges keep their order", []string{"bytes=500-599,0-9,100-109"}, []byteRange{{500, 599}, {0, 9}, {100, 109}}, nil},
	{"unsatisfiable one dropped", []string{"bytes=0-9,2000-3000"}, []byteRange{{0, 9}}, nil},
	{"OWS around commas", []string{"bytes=0-9 ,\t20-29 , 40-49"}, []byteRange{{0, 9}, {20, 29}, {40, 49}}, nil},
	{"empty list elements", []string{"bytes=0-9,,, ,20-29,"}, []byteRange{{0, 9}, {20, 29}}, nil},
	{"unit case-insensitive", []string{"BYTES=0-9"}, []byteRange{{0, 9}}, nil},
	{"leading zeros", []string{"bytes=0007-0009"}, []byteRange{{7, 9}}, nil},
	{"exactly MaxRanges", []string{manyRanges(MaxRanges)}, func() []byteRange {
		var r []byteRange
		for i := range MaxRanges {
			r = append(r, byteRange{int64(2 * i), int64(2 * i)})
		}
		return r
	}(), nil},
	// ignored: no Range, or not in bytes
	{"no field", nil, nil, nil},
	{"empty field", []string{""}, nil, nil},
	{"other unit", []string{"items=0-9"}, nil, nil},
	{"other unit, long", []string{"pages=" + strings.Repeat("1", 5000)}, nil, nil},
	{"bytes as a prefix of another unit", []string{"bytesx=0-9"}, nil, nil},
	// huge counts
	{"MaxRanges+1", []string{manyRanges(MaxRanges + 1)}, nil, errRangeTooMany},
	{"85,000 one-byte ranges", []string{manyRanges(85_000)}, nil, errRangeTooLong},
	{"many in a short header", []string{"bytes=" + strings.Repeat("0-,", 60)}, nil, errRangeTooMany},
	// overlapping
	{"same range twice", []string{"bytes=0-9,0-9"}, nil, errRangeOverlap},
	{"overlapping", []string{"bytes=0-9,5-14"}, nil, errRangeOverlap},
	{"overlapping unsorted", []string{"bytes=500-599,0-9,550-560"}, nil, errRangeOverlap},
	{"suffix overlaps open-ended", []string{"bytes=900-,-50"}, nil, errRangeOverlap},
	{"overlap through clamping", []string{"bytes=990-5000,995-999"}, nil, errRangeOverlap},
	{"whole blob many times", []string{"bytes=0-,0-,0-"}, nil, errRangeOverlap},
	// unsatisfiable
	{"bytes=-0", []string{"bytes=-0"}, nil, errRangeUnsatisfying},
	{"bytes=-0 twice", []string{"bytes=-0,-0"}, nil, errRangeUnsatisfying},
	{"first at the end", []string{"bytes=1000-"}, nil, errRangeUnsatisfying},
	{"first past the end", []string{"bytes=5000-6000"}, nil, errRangeUnsatisfying},
	// overflowing numbers
	{"first overflows int64", []string{"bytes=99999999999999999999-"}, nil, errRangeUnsatisfying},
	{"last overflows int64", []string{"bytes=0-99999999999999999999"}, []byteRange{{0, 999}}, nil},
	{"suffix overflows int64", []string{"bytes=-99999999999999999999"}, []byteRange{{0, 999}}, nil},
	{"max int64", []string{"bytes=9223372036854775807-9223372036854775807"}, nil, errRangeUnsatisfying},
	{"max int64 + 1", []string{"bytes=9223372036854775808-"}, nil, errRangeUnsatisfying},
	{"both overflow, inverted", []string{"bytes=99999999999999999999-1"}, nil, errRangeInverted},
	// negative and signed
	{"negative first", []string{"bytes=-1-2"}, nil, errRangeSyntax},
	{"double minus", []string{"bytes=--2"}, nil, errRangeSyntax},
	{"negative last", []string{"bytes=0--1"}, nil, errRangeSyntax},
	{"plus sign", []string{"bytes=+1-2"}, nil, errRangeSyntax},
	{"plus in suffix", []string{"bytes=-+5"}, nil, errRangeSyntax},
	{"inverted", []string{"bytes=9-0"}, nil, errRangeInverted},
	// syntax
	{"bare minus", []string{"bytes=-"}, nil, errRangeSyntax},
	{"no minus", []string{"bytes=5"}, nil, errRangeSyntax},
	{"empty set", []string{"bytes="}, nil, errRangeSyntax},
	{"only commas", []string{"bytes=,,,"}, nil, errRangeSyntax},
	{"no equals", []string{"bytes"}, nil, errRangeSyntax},
	{"double equals", []string{"bytes==0-9"}, nil, errRangeSyntax},
	{"hex", []string{"bytes=0x10-0x20"}, nil, errRangeSyntax},
	{"exponent", []string{"bytes=1e3-"}, nil, errRangeSyntax},
	{"decimal point", []string{"bytes=1.5-2"}, nil, errRangeSyntax},
	{"unicode digits", []string{"bytes=١-٢"}, nil, errRangeSyntax},
	{"fullwidth digits", []string{"bytes=０-９"}, nil, errRangeSyntax},
	{"NUL", []string{"bytes=0-9\x00"}, nil, errRangeSyntax},
	{"semicolon", []string{"bytes=0-9;20-29"}, nil, errRangeSyntax},
	{"two minuses", []string{"bytes=0-9-20"}, nil, errRangeSyntax},
	{"empty unit", []string{"=0-9"}, nil, errRangeSyntax},
	{"unit with a space", []string{"by tes=0-9"}, nil, errRangeSyntax},
	// whitespace abuse
	{"space before equals", []string{"bytes =0-9"}, nil, errRangeSyntax},
	{"space inside a range", []string{"bytes=0 -9"}, nil, errRangeSyntax},
	{"space after minus", []string{"bytes=0- 9"}, nil, errRangeSyntax},
	{"tab inside a range", []string{"bytes=0-\t9"}, nil, errRangeSyntax},
	{"space inside a number", []string{"bytes=1 0-20"}, nil, errRangeSyntax},
	{"vertical tab", []string{"bytes=0-9\v"}, nil, errRangeSyntax},
	{"form feed", []string{"bytes=\f0-9"}, nil, errRangeSyntax},
	{"CR LF", []string{"bytes=0-9\r\n,20-29"}, nil, errRangeSyntax},
	{"no-break space", []string{"bytes=\u00a00-9"}, nil, errRangeSyntax},
	{"long run of spaces", []string{"bytes=0-9," + strings.Repeat(" ", 2000) + "20-29"}, nil, errRangeTooLong},
	// multiple units and fields
	{"second unit in the set", []string{"bytes=0-9, items=20-29"}, nil, errRangeSyntax},
	{"two specifiers", []string{"bytes=0-9 bytes=20-29"}, nil, errRangeSyntax},
	{"two fields", []string{"bytes=0-9", "bytes=20-29"}, nil, errRangeRepeated},
	{"bytes and another unit", []string{"items=0-9", "bytes=0-9"}, nil, errRangeRepeated},
	// very long headers
	{"long number", []string{"bytes=" + strings.Repeat("1", 2000) + "-"}, nil, errRangeTooLong},
	{"long and empty elements", []string{"bytes=0-9" + strings.Repeat(",", 5000)}, nil, errRangeTooLong},
	{"1 MB header", []string{"bytes=" + strings.Repeat("0-0,", 1<<18)}, nil, errRangeTooLong},
}

func TestParseRangeHostile(t *testing.T) {
	t.Parallel()
	require.GreaterOrEqual(t, len(hostileRanges), 60)
	for _, tt := range hostileRanges {
		t.Run(tt.name, func(t *testing.T) {
			got, ignore, err := parseRange(tt.fields, 1000)
			require.ErrorIs(t, err, tt.err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.err == nil && tt.want == nil, ignore)
			if err == nil && !ignore {
				requireCanonical(t, got, 1000)
			}
		})
	}
}

func TestParseRangeSmallBlobs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v    string
		size int64
		want []byteRange
		err  error
	}{
		{"bytes=0-", 0, nil, errRangeUnsatisfying},
		{"bytes=-1", 0, nil, errRangeUnsatisfying},
		{"bytes=-0", 0, nil, errRangeUnsatisfying},
		{"bytes=0-0", 1, []byteRange{{0, 0}}, nil},
		{"bytes=-1", 1, []byteRange{{0, 0}}, nil},
		{"bytes=-0", 1, nil, errRangeUnsatisfying},
		{"bytes=1-", 1, nil, errRangeUnsatisfying},
		{"bytes=0-0,-1", 1, nil, errRangeOverlap},
		{"bytes=0-0,-1", 2, []byteRange{{0, 0}, {1, 1}}, nil},
	} {
		got, ignore, err := parseRange([]string{tt.v}, tt.size)
		require.ErrorIs(t, err, tt.err, "%s of %d", tt.v, tt.size)
		require.Equal(t, tt.want, got, "%s of %d", tt.v, tt.size)
		require.False(t, ignore)
	}
}

// requireCanonical checks the invariants of accepted ranges: 1 to
// MaxRanges of them, inside the representation, pairwise disjoint, and
// a canonical header that parses back to the same ranges.
func requireCanonical(t testing.TB, got []byteRange, size int64) {
	t.Helper()
	if len(got) < 1 || len(got) > MaxRanges {
		t.Fatalf("%d ranges", len(got))
	}
	for _, r := range got {
		if r.start < 0 || r.start > r.end || r.end >= size {
			t.Fatalf("range %+v outside a representation of %d bytes", r, size)
		}
	}
	sorted := slices.SortedFunc(slices.Values(got), func(a, b byteRange) int { return compareInt64(a.start, b.start) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].start <= sorted[i-1].end {
			t.Fatalf("overlapping ranges accepted: %+v", got)
		}
	}
	canon := formatRanges(got)
	if len(canon) > MaxRangeHeaderLength {
		t.Fatalf("canonical header of %d bytes", len(canon))
	}
	again, ignore, err := parseRange([]string{canon}, size)
	if err != nil || ignore || !slices.Equal(again, got) {
		t.Fatalf("canonical %q parses to %+v, %v, %v; want %+v", canon, again, ignore, err, got)
	}
}

// serveWith runs http.ServeContent behind guardRange for a representation,
// as the Handler does.
func serveWith(rangeFields []string, data []byte, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, v := range rangeFields {
		req.Header.Add("Range", v)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/octet-stream")
	rec.Header().Set("ETag", `"e"`)
	guarded, _ := guardRange(req, int64(len(data)))
	http.ServeContent(rec, guarded, "", time.Time{}, bytes.NewReader(data))
	return rec
}

// checkServed checks what ServeContent answered for the ranges that
// parseRange returned: 206 with exactly those bytes, in that order, or 416
// with Content-Range: bytes */<size> when parseRange refused, or 200 with
// everything when it ignored the header (or the blob is empty).
func checkServed(t testing.TB, rec *httptest.ResponseRecorder, data []byte, got []byteRange, ignore bool, err error) {
	t.Helper()
	size := int64(len(data))
	switch {
	case ignore || size == 0:
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), data) {
			t.Fatalf("ignored Range: status %d, %d bytes; want 200 and the whole blob", rec.Code, rec.Body.Len())
		}
	case err != nil:
		if rec.Code != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("refused Range (%v): status %d, want 416", err, rec.Code)
		}
		if cr := rec.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
			t.Fatalf("416 with Content-Range %q", cr)
		}
	case len(got) == 1:
		r := got[0]
		if rec.Code != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", rec.Code)
		}
		if cr := rec.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", r.start, r.end, size) {
			t.Fatalf("Content-Range %q for %+v", cr, r)
		}
		if !bytes.Equal(rec.Body.Bytes(), data[r.start:r.end+1]) {
			t.Fatal("wrong bytes")
		}
	default:
		if rec.Code != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", rec.Code)
		}
		mt, params, perr := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if perr != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type %q", rec.Header().Get("Content-Type"))
		}
		mr := multipart.NewReader(rec.Body, params["boundary"])
		for i, r := range got {
			p, perr := mr.NextPart()
			if perr != nil {
				t.Fatalf("part %d: %v", i, perr)
			}
			if cr := p.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", r.start, r.end, size) {
				t.Fatalf("part %d: Content-Range %q for %+v", i, cr, r)
			}
			b, _ := io.ReadAll(p)
			if !bytes.Equal(b, data[r.start:r.end+1]) {
				t.Fatalf("part %d: wrong bytes", i)
			}
		}
		if _, perr := mr.NextPart(); perr != io.EOF {
			t.Fatalf("more parts than ranges: %v", perr)
		}
	}
}

// TestServeContentSeesOnlyCanonicalRanges runs every hostile header
// through guardRange and http.ServeContent: the response is exactly what
// parseRange decided.
func TestServeContentSeesOnlyCanonicalRanges(t *testing.T) {
	t.Parallel()
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tt := range hostileRanges {
		t.Run(tt.name, func(t *testing.T) {
			got, ignore, err := parseRange(tt.fields, 1000)
			checkServed(t, serveWith(tt.fields, data), data, got, ignore, err)
		})
	}
}

// TestGuardRangeFollowsIfRange: a Range under an If-Range that does not
// match is ignored, refused or not (200); under a matching one it is
// guarded (416 for a refused Range).
func TestGuardRangeFollowsIfRange(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 1000)
	for _, v := range []string{manyRanges(100), "bytes=-0", "bytes=0-9,5-9"} {
		rec := serveWith([]string{v}, data, "If-Range", `"stale"`)
		require.Equal(t, http.StatusOK, rec.Code, v)
		require.Len(t, rec.Body.Bytes(), len(data))
		rec = serveWith([]string{v}, data, "If-Range", `"e"`)
		require.Equal(t, http.StatusRequestedRangeNotSatisfiable, rec.Code, v)
		require.Equal(t, "bytes */1000", rec.Header().Get("Content-Range"))
		// A date validator: the Handler sends no Last-Modified, so never a match.
		rec = serveWith([]string{v}, data, "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT")
		require.Equal(t, http.StatusOK, rec.Code, v)
		// If-Match is evaluated before Range: 412, not 416.
		rec = serveWith([]string{v}, data, "If-Match", `"other"`)
		require.Equal(t, http.StatusPreconditionFailed, rec.Code, v)
	}
}

func TestFormatRanges(t *testing.T) {
	t.Parallel()
	require.Equal(t, "bytes=0-9,20-29", formatRanges([]byteRange{{0, 9}, {20, 29}}))
	require.Equal(t, "bytes=9223372036854775806-9223372036854775806",
		formatRanges([]byteRange{{1<<63 - 2, 1<<63 - 2}}))
}

// FuzzParseRange: parseRange never panics; what it accepts is canonical
// and bounded (1 to MaxRanges disjoint ranges inside the representation,
// from a header of at most MaxRangeHeaderLength bytes); and
// http.ServeContent behind guardRange answers exactly what it decided.
func FuzzParseRange(f *testing.F) {
	for _, tt := range hostileRanges {
		if len(tt.fields) == 1 && len(tt.fields[0]) < 2000 {
			f.Add(tt.fields[0], int64(1000))
		}
	}
	f.Add("bytes=0-0", int64(0))
	f.Add("bytes=-1", int64(1))
	f.Add("bytes=0-", int64(1<<62))
	f.Add("bytes=-9223372036854775807", int64(1<<63-1))
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		got, ignore, err := parseRange([]string{v}, size)
		if err == nil && !ignore {
			if len(v) > MaxRangeHeaderLength {
				t.Fatalf("accepted a header of %d bytes", len(v))
			}
			requireCanonical(t, got, size)
		}
		if size > 4096 {
			return // serving below needs the bytes
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i)
		}
		if strings.ContainsAny(v, "\r\n") {
			return // not a header value net/http would deliver
		}
		checkServed(t, serveWith([]string{v}, data), data, got, ignore, err)
	})
}

func TestManyRangesHelper(t *testing.T) {
	t.Parallel()
	require.Equal(t, "bytes=0-0,2-2,4-4", manyRanges(3))
	require.Equal(t, strconv.Itoa(MaxRanges), strconv.Itoa(strings.Count(manyRanges(MaxRanges), ",")+1))
}
