package cashttp

import (
	"net/http"
	"strings"

	"github.com/casa-go/casa/cas"
)

// MaxAcceptEncodingLength bounds the Accept-Encoding fields that
// acceptsZstd reads; a longer header counts as not accepting zstd
// (identity is always acceptable, so nothing is refused).
const MaxAcceptEncodingLength = 1024

// zstdETag is the ETag of a blob's zstd-encoded representation, which
// differs from the identity one's: a cache must not answer a client that
// does not accept zstd with it, nor a Range request against it.
func zstdETag(h cas.Hash) string { return `"` + h.String() + `-zstd"` }

// acceptsZstd reports whether r's Accept-Encoding accepts zstd
// (RFC 9110 section 12.5.3): a "zstd" coding with a q-value above 0, or,
// when zstd is not listed, a "*" above 0. Codings are case-insensitive;
// an element whose q-value does not parse counts as q=0 (not acceptable),
// and so does a header over MaxAcceptEncodingLength.
func acceptsZstd(r *http.Request) bool {
	values := r.Header.Values("Accept-Encoding")
	total := 0
	for _, v := range values {
		total += len(v)
	}
	if total > MaxAcceptEncodingLength {
		return false
	}
	zstd, star := -1, -1 // -1: not listed; 0: refused; 1: accepted
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			ok := acceptable(params)
			switch coding {
			case "zstd":
				zstd = merge(zstd, ok)
			case "*":
				star = merge(star, ok)
			}
		}
	}
	if zstd >= 0 {
		return zstd == 1
	}
	return star == 1
}

// merge combines a coding listed twice: refused if either refuses it.
func merge(prev int, ok bool) int {
	if !ok || prev == 0 {
		return 0
	}
	return 1
}

// acceptable reports whether an element's parameters give it a weight
// above 0: no q parameter (q=1), or a valid qvalue ("0" to "1" with up to
// three decimals) that is not zero. Other parameters are ignored.
func acceptable(params string) bool {
	if strings.TrimSpace(params) == "" {
		return true
	}
	q := ""
	found := false
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			if found {
				return false // two weights: malformed
			}
			q, found = strings.TrimSpace(value), true
		}
	}
	if !found {
		return true
	}
	return qvalue(q) > 0
}

// qvalue parses a qvalue (RFC 9110 section 12.4.2) into thousandths, or
// returns -1 when it is malformed.
func qvalue(s string) int {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return -1
	}
	whole := int(s[0] - '0')
	frac := 0
	if len(s) > 1 {
		if s[1] != '.' {
			return -1
		}
		digits := s[2:]
		for i := range 3 {
			frac *= 10
			if i < len(digits) {
				c := digits[i]
				if c < '0' || c > '9' {
					return -1
				}
				frac += int(c - '0')
			}
		}
	}
	if whole == 1 && frac != 0 {
		return -1
	}
	return whole*1000 + frac
}
