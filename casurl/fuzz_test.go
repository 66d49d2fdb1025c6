package casurl_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// FuzzParse feeds arbitrary URLs to Parse: it must never panic, every
// error must wrap ErrInvalidRequest, and every URL it accepts must survive
// a round trip: building the parsed Request and parsing it again gives the
// same Request, and building that gives the same URL (canonical form).
func FuzzParse(f *testing.F) {
	for _, tt := range hostileURLs {
		f.Add(tt.url)
	}
	b := casurl.Builder{}
	f.Add(b.Inline(hello, "image/png"))
	f.Add(b.Download(hello, "text/plain; charset=utf-8", "résumé \"1\".txt"))
	f.Add(b.Thumbnail(hello, 150))
	f.Add("/api/cas/" + helloHex + "?filename=x&content_type=a/b&disposition=inline&sig=zz")
	f.Add("")
	f.Add("%")
	f.Add("?")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		r, err := casurl.Parse(u)
		if err != nil {
			if !errors.Is(err, casurl.ErrInvalidRequest) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidRequest", raw, err)
			}
			return
		}
		checkRoundTrip(t, r)
	})
}

// FuzzRoundTrip builds URLs from arbitrary Request fields: whenever Parse
// accepts the built URL it must return exactly the Request that was built,
// and a Request that passes the documented rules must be accepted.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), "image/png", "", "", 0)
	f.Add([]byte("x"), "application/pdf", "attachment", "Datenblatt ü \"v2\".pdf", 0)
	f.Add([]byte("y"), "text/html; charset=utf-8", "inline", "a;b/c\\d", 0)
	f.Add([]byte("z"), "", "", "", 150)
	f.Add([]byte("z"), "", "", "", -1)
	f.Add([]byte("w"), "a/b", "other", "\r\n", 0)
	f.Fuzz(func(t *testing.T, content []byte, ct, disp, filename string, thumb int) {
		x := casurl.Request{Hash: cas.SumBytes(content), ContentType: ct, Disposition: disp, Filename: filename, Thumbnail: thumb}
		for _, b := range []casurl.Builder{{}, {Prefix: "/p/", Signer: casurl.NewSigner([]byte("k"))}} {
			raw := b.URL(x)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("built URL %q does not parse as a URL: %v", raw, err)
			}
			got, err := casurl.Parse(u)
			if err != nil {
				if !errors.Is(err, casurl.ErrInvalidRequest) {
					t.Fatalf("error %v does not wrap ErrInvalidRequest", err)
				}
				if plainlyValid(x) {
					t.Fatalf("Parse rejected valid %+v (%q): %v", x, raw, err)
				}
				continue
			}
			if d := cmp.Diff(x, got); d != "" {
				t.Fatalf("Parse(build(x)) != x (-x +got):\n%s", d)
			}
			if b.Signer != nil {
				if _, err := b.Signer.Verify(u); err != nil {
					t.Fatalf("Verify of a freshly signed URL: %v", err)
				}
			}
		}
	})
}

// plainlyValid is a conservative validity check written independently of
// the package: plain ASCII letters only, so that it never has to reason
// about escaping or MIME grammar.
func plainlyValid(x casurl.Request) bool {
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
	raw := b.URL(r)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("built URL %q does not parse: %v", raw, err)
	}
	again, err := casurl.Parse(u)
	if err != nil {
		t.Fatalf("Parse(build(%+v)) = %v", r, err)
	}
	if d := cmp.Diff(r, again); d != "" {
		t.Fatalf("round trip changed the request (-want +got):\n%s", d)
	}
	if b.URL(again) != raw {
		t.Fatalf("URL not canonical: %q then %q", raw, b.URL(again))
	}
}
