package cashttp

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// MaxRanges is the most byte ranges one request may ask for; a request
// for more is answered with 416. Real clients ask for one range (media
// seeking, resumed downloads, PDF viewers) or a few (byte-serving PDF
// readers, which stay well under 16). Each range costs a Seek of the
// blob (on S3, a new ranged GET) and a multipart header, so the bound is
// what keeps a request's work proportional to the bytes it returns: with
// no bound, 85,000 one-byte ranges of a 100 KB blob returned 12.7 MB for
// 3.8 s of CPU.
const MaxRanges = 16

// MaxRangeHeaderLength is the longest Range header, in bytes, that is
// parsed; a longer one is answered with 416. MaxRanges ranges of two
// 19-digit positions each, with separators, fit in under 700 bytes.
const MaxRangeHeaderLength = 1024

// byteRange is a satisfiable range of a representation: the bytes from
// start to end inclusive, 0 <= start <= end < size.
type byteRange struct{ start, end int64 }

// Reasons a Range header is refused with 416. They are logged, never sent.
var (
	errRangeSyntax       = errors.New("malformed Range header")
	errRangeRepeated     = errors.New("more than one Range header")
	errRangeTooLong      = errors.New("over-long Range header")
	errRangeTooMany      = errors.New("too many ranges")
	errRangeOverlap      = errors.New("overlapping ranges")
	errRangeInverted     = errors.New("range with last position before first")
	errRangeUnsatisfying = errors.New("no range overlaps the representation")
)

// parseRange parses the Range header fields of a request for a
// representation of size bytes, strictly (RFC 9110, section 14):
//
//   - no Range field, or a range unit other than bytes (compared
//     case-insensitively): ignore is true and the whole representation is
//     served, as RFC 9110 requires for an unknown unit;
//   - otherwise the ranges, in the order asked, clamped to the
//     representation, and err nil; or an error, answered with 416.
//
// Refused (416): more than one Range field, a header over
// MaxRangeHeaderLength, anything outside the grammar (whitespace is
// allowed only around the commas, positions are plain decimal digits),
// a range whose last position is before its first, more than MaxRanges
// ranges, overlapping ranges, and a set in which no range is satisfiable
// (a first position at or past the end, or a zero-length suffix such as
// bytes=-0). Unsatisfiable ranges beside satisfiable ones are dropped.
// Positions too large for an int64 are taken as "past the end", so they
// never overflow. Ranges in descending order are served in the order
// asked: being disjoint and at most MaxRanges, they cost no more than
// ascending ones.
func parseRange(fields []string, size int64) (ranges []byteRange, ignore bool, err error) {
	switch {
	case len(fields) == 0, len(fields) == 1 && fields[0] == "":
		return nil, true, nil // an empty field is no Range, as net/http reads it
	case len(fields) > 1:
		return nil, false, errRangeRepeated
	}
	v := fields[0]
	unit, set, ok := strings.Cut(v, "=")
	if !ok || !isToken(unit) {
		return nil, false, errRangeSyntax
	}
	if !strings.EqualFold(unit, "bytes") {
		return nil, true, nil
	}
	if len(v) > MaxRangeHeaderLength {
		return nil, false, errRangeTooLong
	}
	n := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue // an empty list element (RFC 9110, 5.6.1.2); bounded by the length
		}
		if n++; n > MaxRanges {
			return nil, false, errRangeTooMany
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, false, errRangeSyntax
		}
		var r byteRange
		switch {
		case first == "":
			// A suffix range: the last N bytes.
			n, ok := parseDigits(last)
			if !ok {
				return nil, false, errRangeSyntax
			}
			if n == 0 || size == 0 {
				continue // unsatisfiable
			}
			r = byteRange{start: size - min(n, size), end: size - 1}
		default:
			start, ok := parseDigits(first)
			if !ok {
				return nil, false, errRangeSyntax
			}
			end := int64(math.MaxInt64)
			if last != "" {
				if end, ok = parseDigits(last); !ok {
					return nil, false, errRangeSyntax
				}
				if end < start {
					return nil, false, errRangeInverted
				}
			}
			if start >= size {
				continue // unsatisfiable
			}
			r = byteRange{start: start, end: min(end, size-1)}
		}
		ranges = append(ranges, r)
	}
	if n == 0 {
		return nil, false, errRangeSyntax
	}
	if len(ranges) == 0 {
		return nil, false, errRangeUnsatisfying
	}
	sorted := slices.SortedFunc(slices.Values(ranges), func(a, b byteRange) int {
		return compareInt64(a.start, b.start)
	})
	for i := 1; i < len(sorted); i++ {
		if sorted[i].start <= sorted[i-1].end {
			return nil, false, errRangeOverlap
		}
	}
	return ranges, false, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseDigits parses a non-empty string of ASCII decimal digits. A value
// too large for an int64 saturates at math.MaxInt64, which is past the end
// of any representation.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + d
	}
	return n, true
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// formatRanges is the canonical Range header for ranges: "bytes=" and
// absolute first-last pairs, the only form that reaches net/http.
func formatRanges(ranges []byteRange) string {
	b := make([]byte, 0, 6+len(ranges)*24)
	b = append(b, "bytes="...)
	for i, r := range ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, r.start, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, r.end, 10)
	}
	return string(b)
}

// guardRange returns the request that http.ServeContent is to see for a
// representation of size bytes, and the reason when the Range is refused.
//
// net/http's own Range parser accepts any number of ranges, answers
// bytes=-0 with a 206 whose Content-Range is inverted, refuses unknown
// units with 416, and in Go 1.26.8 has a parsing vulnerability that is
// reachable through ServeContent. So ServeContent never sees the client's
// Range header: a valid one is replaced by its canonical form (absolute,
// clamped, disjoint, at most MaxRanges ranges); one with another unit is
// removed; a refused one is replaced by "bytes=<size>-", which
// ServeContent answers with 416 and Content-Range: bytes */<size> (an
// empty representation gets 200, as net/http serves it).
//
// Rewriting the header, rather than answering 416 here, keeps the order
// in which ServeContent evaluates the request: If-Match (412) and
// If-None-Match (304) come first, and a Range under an If-Range that does
// not match is ignored, refused or not, so the guard applies only when
// ServeContent would honour the Range.
func guardRange(r *http.Request, size int64) (*http.Request, error) {
	fields := r.Header.Values("Range")
	if len(fields) == 0 {
		return r, nil
	}
	ranges, ignore, err := parseRange(fields, size)
	out := r.WithContext(r.Context()) // a shallow copy; the caller's request is not changed
	out.Header = r.Header.Clone()
	switch {
	case ignore:
		out.Header.Del("Range")
	case err != nil:
		out.Header.Set("Range", "bytes="+strconv.FormatInt(size, 10)+"-")
	default:
		out.Header.Set("Range", formatRanges(ranges))
	}
	return out, err
}
