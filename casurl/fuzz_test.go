package casurl_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// FuzzParse feeds arbitrary URLs to Parse: it must never panic, every
// error must wrap ErrInvalidRequest, and every URL it accepts must survive
// a round trip: building the parsed Request and parsing it again gives the
// same Request, and building that gives the same URL (canonical form).
// With a Signer, a URL that does not parse fails the same way, and one that
// does fails only with ErrSignature (none of these is signed).
func FuzzParse(f *testing.F) {
	for _, tt := range hostileURLs {
		f.Add(tt.url)
	}
	b := casurl.Builder{}
	for _, u := range []func() (string, error){
		func() (string, error) { return b.Inline(hello, "image/png") },
		func() (string, error) { return b.Download(hello, "text/plain; charset=utf-8", "résumé \"1\".txt") },
		func() (string, error) { return b.Thumbnail(hello, 150) },
	} {
		raw, err := u()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, ct := range append(validContentTypes, invalidContentTypes...) {
		f.Add("/api/cas/" + helloHex + "?content_type=" + url.QueryEscape(ct))
	}
	for _, name := range append(validFilenames, invalidFilenames...) {
		f.Add("/api/cas/" + helloHex + "?content_type=a/b&filename=" + url.QueryEscape(name))
	}
	f.Add("/api/cas/" + helloHex + "?filename=x&content_type=a/b&disposition=inline&sig=zz")
	f.Add("/api/cas/" + helloHex + "?content_type=a/b&expires=2000000000&sig=zz")
	f.Add("/api/cas/" + helloHex + "?thumbnail=5&expires=1&sig=zz")
	f.Add("/api/cas/" + helloHex + "?thumbnail=5&expires=9999999999&sig=zz")
	signed := casurl.Builder{Signer: casurl.NewSigner([]byte("another key")), TTL: time.Hour}
	if raw, err := signed.Inline(hello, "image/png"); err == nil {
		f.Add(raw)
	} else {
		f.Fatal(err)
	}
	f.Add("")
	f.Add("%")
	f.Add("?")
	signer := casurl.NewSigner([]byte("k"))
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		r, err := casurl.Parse(casurl.LastSegment(u), u.RawQuery, nil)
		_, serr := casurl.Parse(casurl.LastSegment(u), u.RawQuery, signer)
		if err != nil {
			if !errors.Is(err, casurl.ErrInvalidRequest) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidRequest", raw, err)
			}
			if serr == nil || serr.Error() != err.Error() {
				t.Fatalf("Parse(%q) with a Signer = %v, without = %v", raw, serr, err)
			}
			return
		}
		if !errors.Is(serr, casurl.ErrSignature) || errors.Is(serr, casurl.ErrInvalidRequest) {
			t.Fatalf("Parse(%q) with a Signer = %v, want ErrSignature alone", raw, serr)
		}
		checkRoundTrip(t, r)
	})
}

// FuzzRoundTrip builds URLs from arbitrary Request fields. For any Request,
// Builder.URL either returns an error wrapping ErrInvalidRequest or a URL
// that Parse turns back into exactly that Request (with the Signer too).
// And URL checks exactly what Parse checks: URL fails if and only if Parse
// rejects the same Request written by hand without any check; a Request
// that passes the documented rules (written here independently) builds.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), "image/png", "", "", 0, int64(0))
	f.Add([]byte("x"), "application/pdf", "attachment", "Datenblatt ü \"v2\".pdf", 0, int64(0))
	f.Add([]byte("y"), "text/html; charset=utf-8", "inline", "a;b/c\\d", 0, int64(0))
	f.Add([]byte("z"), "", "", "", 150, int64(0))
	f.Add([]byte("z"), "", "", "", -1, int64(0))
	f.Add([]byte("z"), "", "", "", 0, int64(0))
	f.Add([]byte("z"), "", "", "", casurl.MaxThumbnailSize, int64(0))
	f.Add([]byte("z"), "", "", "", casurl.MaxThumbnailSize+1, int64(0))
	f.Add([]byte("z"), "a/b", "", "", 5, int64(0))
	f.Add([]byte("z"), "", "inline", "", 5, int64(0))
	f.Add([]byte("w"), "a/b", "other", "\r\n", 0, int64(0))
	f.Add([]byte("w"), "not a type", "", "", 0, int64(0))
	for _, ct := range invalidContentTypes {
		f.Add([]byte("c"), ct, "", "", 0, int64(0))
	}
	for _, name := range invalidFilenames {
		f.Add([]byte("n"), "a/b", "attachment", name, 0, int64(0))
	}
	f.Add([]byte("e"), "a/b", "", "", 0, int64(2000000000))
	f.Add([]byte("e"), "", "", "", 7, int64(1))
	f.Add([]byte("e"), "a/b", "", "", 0, int64(casurl.MaxExpires))
	f.Add([]byte("e"), "a/b", "", "", 0, int64(casurl.MaxExpires+1))
	f.Add([]byte("e"), "a/b", "", "", 0, int64(-1))
	f.Fuzz(func(t *testing.T, content []byte, ct, disp, filename string, thumb int, expires int64) {
		x := casurl.Request{Hash: cas.SumBytes(content), ContentType: ct, Disposition: disp, Filename: filename, Thumbnail: thumb}
		if expires != 0 {
			x.Expires = time.Unix(expires, 0)
		}
		_, uncheckedErr := casurl.Parse(x.Hash.String(), uncheckedQuery(x), nil)
		for _, b := range []casurl.Builder{{}, {Prefix: "/p/", Signer: casurl.NewSigner([]byte("k"))}} {
			signed := b.Signer != nil
			raw, err := b.URL(x)
			if err != nil {
				if !errors.Is(err, casurl.ErrInvalidRequest) {
					t.Fatalf("URL(%+v) error %v does not wrap ErrInvalidRequest", x, err)
				}
				if raw != "" {
					t.Fatalf("URL(%+v) = %q with error %v", x, raw, err)
				}
				if plainlyValid(x, signed) {
					t.Fatalf("URL rejected valid %+v: %v", x, err)
				}
				if uncheckedErr == nil && (signed || x.Expires.IsZero()) {
					t.Fatalf("URL rejected %+v, which Parse accepts: %v", x, err)
				}
				continue
			}
			if uncheckedErr != nil {
				t.Fatalf("URL built %q from %+v, which Parse rejects: %v", raw, x, uncheckedErr)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("built URL %q does not parse as a URL: %v", raw, err)
			}
			// At the Unix epoch no URL has expired yet.
			got, err := casurl.ParseAt(casurl.LastSegment(u), u.RawQuery, b.Signer, time.Unix(0, 0))
			if err != nil {
				t.Fatalf("Parse(URL(%+v)) = %v", x, err)
			}
			if d := cmp.Diff(x, got); d != "" {
				t.Fatalf("Parse(URL(x)) != x (-x +got):\n%s", d)
			}
		}
	})
}

// uncheckedQuery writes the query of x the way a Builder does, but
// without checking anything, as the Builder did before it checked.
func uncheckedQuery(x casurl.Request) string {
	q := []string{}
	add := func(k, v string) { q = append(q, k+"="+url.QueryEscape(v)) }
	if x.ContentType != "" {
		add("content_type", x.ContentType)
	}
	if x.Disposition != "" {
		add("disposition", x.Disposition)
	}
	if x.Filename != "" {
		add("filename", x.Filename)
	}
	if x.Thumbnail != 0 {
		add("thumbnail", strconv.Itoa(x.Thumbnail))
	}
	if !x.Expires.IsZero() {
		// A sig of any value: Parse without a Signer accepts it unchecked.
		add("expires", strconv.FormatInt(x.Expires.Unix(), 10))
		add("sig", "x")
	}
	return strings.Join(q, "&")
}

// plainlyValid is a conservative validity check written independently of
// the package: plain ASCII letters only, so that it never has to reason
// about escaping or MIME grammar. An expiring request is valid only signed,
// with a whole-second time in 1..9999999999.
func plainlyValid(x casurl.Request, signed bool) bool {
	if !x.Expires.IsZero() {
		if u := x.Expires.Unix(); !signed || x.Expires.Nanosecond() != 0 || u < 1 || u > 9999999999 {
			return false
		}
	}
	alpha := func(s string, max int) bool {
		if len(s) > max {
			return false
		}
		for _, c := range []byte(s) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == ' ') {
				return false
			}
		}
		return true
	}
	if x.Thumbnail != 0 {
		return x.ContentType == "" && x.Disposition == "" && x.Filename == "" && x.Thumbnail >= 1 && x.Thumbnail <= 999999999
	}
	if x.Disposition != "" && x.Disposition != "inline" && x.Disposition != "attachment" {
		return false
	}
	typ, sub, ok := cut(x.ContentType)
	return ok && alpha(typ, 100) && alpha(sub, 100) && typ != "" && sub != "" &&
		!containsSpaceOrDot(typ) && !containsSpaceOrDot(sub) && alpha(x.Filename, 255)
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func containsSpaceOrDot(s string) bool {
	for _, c := range []byte(s) {
		if c == ' ' || c == '.' {
			return true
		}
	}
	return false
}

func checkRoundTrip(t *testing.T, r casurl.Request) {
	t.Helper()
	b := casurl.Builder{}
	if !r.Expires.IsZero() {
		b.Signer = casurl.NewSigner([]byte("k")) // an expiring URL is built signed
	}
	raw, err := b.URL(r)
	if err != nil {
		t.Fatalf("URL(%+v) of a parsed Request = %v", r, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("built URL %q does not parse: %v", raw, err)
	}
	again, err := casurl.Parse(casurl.LastSegment(u), u.RawQuery, nil)
	if err != nil {
		t.Fatalf("Parse(build(%+v)) = %v", r, err)
	}
	if d := cmp.Diff(r, again); d != "" {
		t.Fatalf("round trip changed the request (-want +got):\n%s", d)
	}
	if raw2, err := b.URL(again); err != nil || raw2 != raw {
		t.Fatalf("URL not canonical: %q then %q, %v", raw, raw2, err)
	}
}
