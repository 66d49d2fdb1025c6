package casurl_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// helloHex is the SHA-256 of "hello", computed without cas.
var helloHex = func() string {
	s := sha256.Sum256([]byte("hello"))
	return hex.EncodeToString(s[:])
}()

var hello = cas.SumBytes([]byte("hello"))

func mustParseURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// mustURL takes the results of a Builder method and fails t on an error:
// mustURL(t)(b.Inline(h, ct)).
func mustURL(t testing.TB) func(string, error) string {
	return func(u string, err error) string {
		t.Helper()
		require.NoError(t, err)
		require.NotEmpty(t, u)
		return u
	}
}

// parseURL parses raw as a URL and its hash and query with casurl.Parse,
// verifying the signature when s is not nil: the migration of the removed
// Parse(*url.URL) and Signer.Verify.
func parseURL(t testing.TB, raw string, s *casurl.Signer) (casurl.Request, error) {
	t.Helper()
	u := mustParseURL(t, raw)
	return casurl.Parse(casurl.LastSegment(u), u.RawQuery, s)
}

func TestBuilderURLs(t *testing.T) {
	t.Parallel()
	must := mustURL(t)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"inline", must(casurl.Builder{}.Inline(hello, "image/png")),
			"/api/cas/" + helloHex + "?content_type=image%2Fpng"},
		{"inline empty type", must(casurl.Builder{}.Inline(hello, "")),
			"/api/cas/" + helloHex + "?content_type=application%2Foctet-stream"},
		{"download", must(casurl.Builder{}.Download(hello, "application/pdf", "data sheet.pdf")),
			"/api/cas/" + helloHex + "?content_type=application%2Fpdf&disposition=attachment&filename=data+sheet.pdf"},
		{"download escapes", must(casurl.Builder{}.Download(hello, "text/plain; charset=utf-8", "a&b=c?d#e%f/ü.txt")),
			"/api/cas/" + helloHex + "?content_type=text%2Fplain%3B+charset%3Dutf-8&disposition=attachment&filename=a%26b%3Dc%3Fd%23e%25f%2F%C3%BC.txt"},
		{"download without name", must(casurl.Builder{}.Download(hello, "text/csv", "")),
			"/api/cas/" + helloHex + "?content_type=text%2Fcsv&disposition=attachment"},
		{"thumbnail", must(casurl.Builder{}.Thumbnail(hello, 150)),
			"/api/cas/" + helloHex + "?thumbnail=150"},
		{"prefix with slash", must(casurl.Builder{Prefix: "/files/"}.Thumbnail(hello, 64)),
			"/files/" + helloHex + "?thumbnail=64"},
		{"absolute prefix", must(casurl.Builder{Prefix: "https://cdn.example.com/blobs"}.Inline(hello, "image/jpeg")),
			"https://cdn.example.com/blobs/" + helloHex + "?content_type=image%2Fjpeg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.got)
		})
	}
}

func TestBuilderFixedOrder(t *testing.T) {
	t.Parallel()
	// However the Request is filled in, the URL lists its parameters in
	// one order, and parsing a URL with the parameters shuffled and
	// building it again gives the canonical URL.
	b := casurl.Builder{}
	must := mustURL(t)
	canonical := must(b.Download(hello, "image/png", "x.png"))
	shuffled := "/api/cas/" + helloHex + "?filename=x.png&disposition=attachment&content_type=image/png"
	r, err := parseURL(t, shuffled, nil)
	require.NoError(t, err)
	require.Equal(t, canonical, must(b.URL(r)))
	for range 20 {
		require.Equal(t, canonical, must(b.Download(hello, "image/png", "x.png")))
	}
}

// TestBuilderRejects: a Builder returns an error, and no URL, for every
// request that Parse would reject, so no code path silently hands out a
// URL that always gets 400. Before, Inline(h, "not a type") and
// Thumbnail(h, 0) returned such URLs.
func TestBuilderRejects(t *testing.T) {
	t.Parallel()
	for _, b := range []casurl.Builder{{}, {Prefix: "/p", Signer: casurl.NewSigner([]byte("k"))}} {
		tests := []struct {
			name, mention string
			build         func() (string, error)
		}{
			{"inline not a type", "content_type", func() (string, error) { return b.Inline(hello, "not a type") }},
			{"inline CRLF type", "content_type", func() (string, error) { return b.Inline(hello, "text/plain\r\nX-Evil: 1") }},
			{"inline non-ASCII type", "content_type", func() (string, error) { return b.Inline(hello, "text/pläin") }},
			{"inline long type", "content_type", func() (string, error) { return b.Inline(hello, "a/"+strings.Repeat("b", 300)) }},
			{"download bad type", "content_type", func() (string, error) { return b.Download(hello, "text/", "a.txt") }},
			{"download CRLF filename", "filename", func() (string, error) { return b.Download(hello, "text/plain", "a\r\nb") }},
			{"download bidi filename", "filename", func() (string, error) { return b.Download(hello, "text/plain", "invoice\u202efdp.exe") }},
			{"download invalid UTF-8 filename", "filename", func() (string, error) { return b.Download(hello, "text/plain", "\xff") }},
			{"download long filename", "filename", func() (string, error) { return b.Download(hello, "text/plain", strings.Repeat("x", 256)) }},
			{"thumbnail 0", "content_type or thumbnail", func() (string, error) { return b.Thumbnail(hello, 0) }},
			{"thumbnail negative", "thumbnail", func() (string, error) { return b.Thumbnail(hello, -5) }},
			{"thumbnail too large", "thumbnail", func() (string, error) { return b.Thumbnail(hello, casurl.MaxThumbnailSize+1) }},
			{"URL of the zero Request", "content_type or thumbnail", func() (string, error) { return b.URL(casurl.Request{}) }},
			{"URL with both", "exclusive", func() (string, error) {
				return b.URL(casurl.Request{Hash: hello, ContentType: "a/b", Thumbnail: 5})
			}},
			{"URL thumbnail with filename", "thumbnail", func() (string, error) {
				return b.URL(casurl.Request{Hash: hello, Thumbnail: 5, Filename: "a"})
			}},
			{"URL bad disposition", "disposition", func() (string, error) {
				return b.URL(casurl.Request{Hash: hello, ContentType: "a/b", Disposition: "form-data"})
			}},
		}
		for _, tt := range tests {
			got, err := tt.build()
			require.ErrorIs(t, err, casurl.ErrInvalidRequest, tt.name)
			require.Contains(t, err.Error(), tt.mention, tt.name)
			require.Empty(t, got, tt.name)
		}
	}
	// The largest size still builds and parses.
	u, err := casurl.Builder{}.Thumbnail(hello, casurl.MaxThumbnailSize)
	require.NoError(t, err)
	r, err := parseURL(t, u, nil)
	require.NoError(t, err)
	require.Equal(t, casurl.MaxThumbnailSize, r.Thumbnail)
}

func TestForKey(t *testing.T) {
	t.Parallel()
	b := casurl.Builder{}
	must := mustURL(t)
	tests := []struct {
		name, key, ct, filename string
		want                    string
		ok                      bool
	}{
		{"empty key", "", "image/png", "", "", false},
		{"uuid key", "2f1c7e0a-8d6b-4c1e-9b0a-3e5f7d9c1a2b", "image/png", "x.png", "", false},
		{"legacy path key", "uploads/2024/photo.jpg", "image/jpeg", "", "", false},
		{"bare hex without prefix", helloHex, "image/png", "", "", false},
		{"uppercase cas key", "cas/" + strings.ToUpper(helloHex), "image/png", "", "", false},
		{"short cas key", "cas/" + helloHex[:63], "image/png", "", "", false},
		{"cas key inline", "cas/" + helloHex, "image/png", "", must(b.Inline(hello, "image/png")), true},
		{"cas key download", "cas/" + helloHex, "application/pdf", "a.pdf", must(b.Download(hello, "application/pdf", "a.pdf")), true},
		{"cas key no type", "cas/" + helloHex, "", "", must(b.Inline(hello, "application/octet-stream")), true},
		// No URL would serve these rows (it would always get 400): no URL.
		{"cas key invalid type", "cas/" + helloHex, "not a type", "", "", false},
		{"cas key invalid type with filename", "cas/" + helloHex, "text/", "a.txt", "", false},
		{"cas key control in filename", "cas/" + helloHex, "text/plain", "a\nb.txt", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := b.ForKey(tt.key, tt.ct, tt.filename)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
			if ok {
				r, err := parseURL(t, got, nil)
				require.NoError(t, err)
				require.Equal(t, hello, r.Hash)
				require.Equal(t, tt.filename, r.Filename)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		url   string
		want  casurl.Request
		thumb bool
	}{
		{"inline", "/api/cas/" + helloHex + "?content_type=image%2Fpng",
			casurl.Request{Hash: hello, ContentType: "image/png"}, false},
		{"unescaped slash", "/api/cas/" + helloHex + "?content_type=image/png",
			casurl.Request{Hash: hello, ContentType: "image/png"}, false},
		{"with params", "/api/cas/" + helloHex + "?content_type=text%2Fplain%3B+charset%3Dutf-8&disposition=inline&filename=r%C3%A9sum%C3%A9.txt",
			casurl.Request{Hash: hello, ContentType: "text/plain; charset=utf-8", Disposition: "inline", Filename: "résumé.txt"}, false},
		{"attachment", "/x/" + helloHex + "?content_type=application/pdf&disposition=attachment&filename=a%22b.pdf",
			casurl.Request{Hash: hello, ContentType: "application/pdf", Disposition: "attachment", Filename: `a"b.pdf`}, false},
		{"hostile but printable filename", "/" + helloHex + "?content_type=a/b&filename=..%2F..%2Fetc%5Cpasswd%3B",
			casurl.Request{Hash: hello, ContentType: "a/b", Filename: `../../etc\passwd;`}, false},
		{"thumbnail", "/api/cas/" + helloHex + "?thumbnail=150",
			casurl.Request{Hash: hello, Thumbnail: 150}, true},
		{"huge but parseable thumbnail", "/api/cas/" + helloHex + "?thumbnail=999999999",
			casurl.Request{Hash: hello, Thumbnail: 999999999}, true},
		{"sig ignored by Parse", "/api/cas/" + helloHex + "?thumbnail=1&sig=whatever",
			casurl.Request{Hash: hello, Thumbnail: 1}, true},
		{"absolute", "https://example.com/api/cas/" + helloHex + "?content_type=image/gif",
			casurl.Request{Hash: hello, ContentType: "image/gif"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseURL(t, tt.url, nil)
			require.NoError(t, err)
			require.Empty(t, cmp.Diff(tt.want, got))
			require.Equal(t, tt.thumb, got.IsThumbnail())
		})
	}
}

// hostileURLs are URLs that Parse must reject, each with the parameter
// (or part) the error must name.
var hostileURLs = []struct {
	name, url, mention string
}{
	{"no hash", "/api/cas/?content_type=a/b", "path"},
	{"prefix only", "/api/cas?content_type=a/b", "path"},
	{"uppercase hash", "/api/cas/" + strings.ToUpper(helloHex) + "?content_type=a/b", "path"},
	{"63 hex", "/api/cas/" + helloHex[:63] + "?content_type=a/b", "path"},
	{"65 hex", "/api/cas/" + helloHex + "0?content_type=a/b", "path"},
	{"non-hex", "/api/cas/" + helloHex[:63] + "g?content_type=a/b", "path"},
	{"trailing slash", "/api/cas/" + helloHex + "/?content_type=a/b", "path"},
	{"dot dot", "/api/cas/" + helloHex + "/..?content_type=a/b", "path"},
	{"traversal", "/api/cas/../../etc/passwd?content_type=a/b", "path"},
	{"percent-encoded hash", "/api/cas/%61" + helloHex[1:] + "?content_type=a/b", "path"},
	{"encoded slash", "/api/cas/x%2F" + helloHex + "?content_type=a/b", "path"},
	{"hash with extension", "/api/cas/" + helloHex + ".png?content_type=a/b", "path"},
	{"neither", "/api/cas/" + helloHex, "content_type or thumbnail"},
	{"both", "/api/cas/" + helloHex + "?content_type=a/b&thumbnail=5", "exclusive"},
	{"repeated content_type", "/api/cas/" + helloHex + "?content_type=a/b&content_type=text/html", "content_type"},
	{"repeated thumbnail", "/api/cas/" + helloHex + "?thumbnail=5&thumbnail=6", "thumbnail"},
	{"repeated sig", "/api/cas/" + helloHex + "?thumbnail=5&sig=a&sig=b", "sig"},
	{"empty content_type", "/api/cas/" + helloHex + "?content_type=", "content_type"},
	{"empty thumbnail", "/api/cas/" + helloHex + "?thumbnail=", "thumbnail"},
	{"empty filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=", "filename"},
	{"empty disposition", "/api/cas/" + helloHex + "?content_type=a/b&disposition=", "disposition"},
	{"unknown parameter", "/api/cas/" + helloHex + "?content_type=a/b&x=1", "unknown parameter"},
	{"zero thumbnail", "/api/cas/" + helloHex + "?thumbnail=0", "thumbnail"},
	{"negative thumbnail", "/api/cas/" + helloHex + "?thumbnail=-5", "thumbnail"},
	{"plus thumbnail", "/api/cas/" + helloHex + "?thumbnail=%2B5", "thumbnail"},
	{"leading zero thumbnail", "/api/cas/" + helloHex + "?thumbnail=050", "thumbnail"},
	{"float thumbnail", "/api/cas/" + helloHex + "?thumbnail=1.5", "thumbnail"},
	{"hex thumbnail", "/api/cas/" + helloHex + "?thumbnail=0x10", "thumbnail"},
	{"word thumbnail", "/api/cas/" + helloHex + "?thumbnail=large", "thumbnail"},
	{"huge thumbnail", "/api/cas/" + helloHex + "?thumbnail=99999999999999999999", "thumbnail"},
	{"space thumbnail", "/api/cas/" + helloHex + "?thumbnail=+5", "thumbnail"},
	{"thumbnail with filename", "/api/cas/" + helloHex + "?thumbnail=5&filename=a", "thumbnail"},
	{"thumbnail with disposition", "/api/cas/" + helloHex + "?thumbnail=5&disposition=inline", "thumbnail"},
	{"bad mime", "/api/cas/" + helloHex + "?content_type=notamime", "content_type"},
	{"mime with bad param", "/api/cas/" + helloHex + "?content_type=text/plain%3B%3B%3D", "content_type"},
	{"CRLF in content_type", "/api/cas/" + helloHex + "?content_type=text/plain%0D%0AX-Evil:+1", "content_type"},
	{"NUL in content_type", "/api/cas/" + helloHex + "?content_type=text/plain%00", "content_type"},
	{"non-ASCII content_type", "/api/cas/" + helloHex + "?content_type=text/pl%C3%A4in", "content_type"},
	{"long content_type", "/api/cas/" + helloHex + "?content_type=a/" + strings.Repeat("b", 300), "content_type"},
	{"unknown disposition", "/api/cas/" + helloHex + "?content_type=a/b&disposition=form-data", "disposition"},
	{"uppercase disposition", "/api/cas/" + helloHex + "?content_type=a/b&disposition=Attachment", "disposition"},
	{"CRLF in filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=a%0D%0Ab", "filename"},
	{"NUL in filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=a%00b", "filename"},
	{"DEL in filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=a%7Fb", "filename"},
	{"C1 control in filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=a%C2%85b", "filename"},
	{"bidi override in filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=invoice%E2%80%AEfdp.exe", "filename"},
	{"invalid UTF-8 filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=%FF%FE", "filename"},
	{"long filename", "/api/cas/" + helloHex + "?content_type=a/b&filename=" + strings.Repeat("x", 256), "filename"},
	{"semicolon separator", "/api/cas/" + helloHex + "?content_type=a/b;filename=x", "query"},
	{"bad escape", "/api/cas/" + helloHex + "?content_type=a/b&filename=%zz", "query"},
	{"unsigned expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=2000000000", "expires"},
	{"unsigned expiring thumbnail", "/api/cas/" + helloHex + "?thumbnail=5&expires=2000000000", "expires"},
	{"empty expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=&sig=x", "expires"},
	{"repeated expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=1&expires=2&sig=x", "expires"},
	{"zero expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=0&sig=x", "expires"},
	{"negative expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=-1&sig=x", "expires"},
	{"plus expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=%2B2000000000&sig=x", "expires"},
	{"leading zero expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=02000000000&sig=x", "expires"},
	{"fractional expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=2000000000.5&sig=x", "expires"},
	{"RFC 3339 expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=2030-01-01T00:00:00Z&sig=x", "expires"},
	{"11-digit expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=10000000000&sig=x", "expires"},
	{"overflowing expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=99999999999999999999&sig=x", "expires"},
	{"space expires", "/api/cas/" + helloHex + "?content_type=a/b&expires=+2000000000&sig=x", "expires"},
	{"oversized query", "/api/cas/" + helloHex + "?content_type=a/b&filename=" + strings.Repeat("%C3%A9", 1000), "query"},
}

func TestParseHostile(t *testing.T) {
	t.Parallel()
	for _, tt := range hostileURLs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseURL(t, tt.url, nil)
			require.ErrorIs(t, err, casurl.ErrInvalidRequest)
			require.Contains(t, err.Error(), tt.mention)
			require.Equal(t, casurl.Request{}, got, "a rejected URL yields the zero Request")
			// With a Signer the request is parsed first: it fails the same
			// way, not with ErrSignature.
			got, err = parseURL(t, tt.url, casurl.NewSigner([]byte("k")))
			require.ErrorIs(t, err, casurl.ErrInvalidRequest)
			require.Contains(t, err.Error(), tt.mention)
			require.False(t, errors.Is(err, casurl.ErrSignature))
			require.Equal(t, casurl.Request{}, got)
		})
	}
}

// TestParseParts: Parse takes the hash and the raw query apart, as a
// router that extracted the hash from the path gives them.
func TestParseParts(t *testing.T) {
	t.Parallel()
	r, err := casurl.Parse(helloHex, "thumbnail=32", nil)
	require.NoError(t, err)
	require.Equal(t, casurl.Request{Hash: hello, Thumbnail: 32}, r)
	for _, hash := range []string{"", "../" + helloHex, helloHex + "/", "/" + helloHex, "cas/" + helloHex} {
		_, err = casurl.Parse(hash, "thumbnail=32", nil)
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, hash)
		require.Contains(t, err.Error(), "path", hash)
	}
	_, err = casurl.Parse(helloHex, "", nil)
	require.ErrorIs(t, err, casurl.ErrInvalidRequest)
}

func TestLastSegment(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"/api/cas/" + helloHex + "?x=1":    helloHex,
		"https://h/p/" + helloHex:          helloHex,
		helloHex:                           helloHex,
		"/api/cas/":                        "",
		"/api/cas/x%2F" + helloHex:         "x%2F" + helloHex,
		"/api/cas/" + helloHex + "/..?a=b": "..",
	} {
		require.Equal(t, want, casurl.LastSegment(mustParseURL(t, raw)), raw)
	}
}

// validContentTypes and invalidContentTypes: CheckContentType accepts the
// first and rejects the second, exactly as Parse does in content_type.
var validContentTypes = []string{
	"image/png", "a/b", "text/plain; charset=utf-8", "application/vnd.ms-excel",
	"multipart/x-mixed-replace; boundary=x", "IMAGE/PNG", `text/plain; name="a b"`,
	"a/" + strings.Repeat("b", casurl.MaxContentTypeLength-2),
}

var invalidContentTypes = []string{
	"", "notamime", "not a type", "text/", "/plain", "a/b/c", "text/plain;;=",
	"text/plain\r\nX-Evil: 1", "text/plain\x00", "text/pl\u00e4in", "text/plain\t",
	"a/" + strings.Repeat("b", casurl.MaxContentTypeLength-1),
}

func TestCheckContentType(t *testing.T) {
	t.Parallel()
	for _, ct := range validContentTypes {
		require.NoError(t, casurl.CheckContentType(ct), "%q", ct)
		_, err := casurl.Parse(helloHex, "content_type="+url.QueryEscape(ct), nil)
		require.NoError(t, err, "%q", ct)
	}
	for _, ct := range invalidContentTypes {
		err := casurl.CheckContentType(ct)
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, "%q", ct)
		require.Contains(t, err.Error(), "content_type", "%q", ct)
		_, err = casurl.Parse(helloHex, "content_type="+url.QueryEscape(ct), nil)
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, "%q", ct)
	}
}

var validFilenames = []string{
	"a", "report.pdf", "data sheet.pdf", "résumé \"1\".txt", "../../etc\\passwd;", "報告.pdf", "📷.jpg",
	"..", "a%0d%0ab.txt", strings.Repeat("x", casurl.MaxFilenameLength), strings.Repeat("é", casurl.MaxFilenameLength/2),
}

var invalidFilenames = []string{
	"", "a\r\nb", "a\x00b", "a\tb", "a\x7fb", "a\u0085b", "invoice\u202efdp.exe", "a\u2066b", "a\u061cb",
	"\xff\xfe", "a\xc3", strings.Repeat("x", casurl.MaxFilenameLength+1),
}

func TestCheckFilename(t *testing.T) {
	t.Parallel()
	for _, name := range validFilenames {
		require.NoError(t, casurl.CheckFilename(name), "%q", name)
		_, err := casurl.Parse(helloHex, "content_type=a/b&filename="+url.QueryEscape(name), nil)
		require.NoError(t, err, "%q", name)
	}
	for _, name := range invalidFilenames {
		err := casurl.CheckFilename(name)
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, "%q", name)
		require.Contains(t, err.Error(), "filename", "%q", name)
		_, err = casurl.Parse(helloHex, "content_type=a/b&filename="+url.QueryEscape(name), nil)
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, "%q", name)
	}
}
