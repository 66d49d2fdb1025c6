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

func TestBuilderURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"inline", casurl.Builder{}.Inline(hello, "image/png"),
			"/api/cas/" + helloHex + "?content_type=image%2Fpng"},
		{"inline empty type", casurl.Builder{}.Inline(hello, ""),
			"/api/cas/" + helloHex + "?content_type=application%2Foctet-stream"},
		{"download", casurl.Builder{}.Download(hello, "application/pdf", "data sheet.pdf"),
			"/api/cas/" + helloHex + "?content_type=application%2Fpdf&disposition=attachment&filename=data+sheet.pdf"},
		{"download escapes", casurl.Builder{}.Download(hello, "text/plain; charset=utf-8", "a&b=c?d#e%f/ü.txt"),
			"/api/cas/" + helloHex + "?content_type=text%2Fplain%3B+charset%3Dutf-8&disposition=attachment&filename=a%26b%3Dc%3Fd%23e%25f%2F%C3%BC.txt"},
		{"download without name", casurl.Builder{}.Download(hello, "text/csv", ""),
			"/api/cas/" + helloHex + "?content_type=text%2Fcsv&disposition=attachment"},
		{"thumbnail", casurl.Builder{}.Thumbnail(hello, 150),
			"/api/cas/" + helloHex + "?thumbnail=150"},
		{"prefix with slash", casurl.Builder{Prefix: "/files/"}.Thumbnail(hello, 64),
			"/files/" + helloHex + "?thumbnail=64"},
		{"absolute prefix", casurl.Builder{Prefix: "https://cdn.example.com/blobs"}.Inline(hello, "image/jpeg"),
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
	canonical := b.Download(hello, "image/png", "x.png")
	shuffled := "/api/cas/" + helloHex + "?filename=x.png&disposition=attachment&content_type=image/png"
	r, err := casurl.Parse(mustParseURL(t, shuffled))
	require.NoError(t, err)
	require.Equal(t, canonical, b.URL(r))
	for range 20 {
		require.Equal(t, canonical, b.Download(hello, "image/png", "x.png"))
	}
}

func TestForKey(t *testing.T) {
	t.Parallel()
	b := casurl.Builder{}
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
		{"cas key inline", "cas/" + helloHex, "image/png", "", b.Inline(hello, "image/png"), true},
		{"cas key download", "cas/" + helloHex, "application/pdf", "a.pdf", b.Download(hello, "application/pdf", "a.pdf"), true},
		{"cas key no type", "cas/" + helloHex, "", "", b.Inline(hello, "application/octet-stream"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := b.ForKey(tt.key, tt.ct, tt.filename)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
			if ok {
				r, err := casurl.Parse(mustParseURL(t, got))
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
			got, err := casurl.Parse(mustParseURL(t, tt.url))
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
	{"oversized query", "/api/cas/" + helloHex + "?content_type=a/b&filename=" + strings.Repeat("%C3%A9", 1000), "query"},
}

func TestParseHostile(t *testing.T) {
	t.Parallel()
	for _, tt := range hostileURLs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := mustParseURL(t, tt.url)
			got, err := casurl.Parse(u)
			require.ErrorIs(t, err, casurl.ErrInvalidRequest)
			require.Contains(t, err.Error(), tt.mention)
			require.Equal(t, casurl.Request{}, got, "a rejected URL yields the zero Request")
			// A signed URL is parsed first: it fails the same way, not with ErrSignature.
			_, err = casurl.NewSigner([]byte("k")).Verify(u)
			require.ErrorIs(t, err, casurl.ErrInvalidRequest)
			require.False(t, errors.Is(err, casurl.ErrSignature))
		})
	}
}

func TestParseNilURL(t *testing.T) {
	t.Parallel()
	_, err := casurl.Parse(nil)
	require.ErrorIs(t, err, casurl.ErrInvalidRequest)
	_, err = casurl.NewSigner([]byte("k")).Verify(nil)
	require.ErrorIs(t, err, casurl.ErrInvalidRequest)
}

func TestParseParts(t *testing.T) {
	t.Parallel()
	r, err := casurl.ParseParts(helloHex, "thumbnail=32")
	require.NoError(t, err)
	require.Equal(t, casurl.Request{Hash: hello, Thumbnail: 32}, r)
	_, err = casurl.ParseParts("../"+helloHex, "thumbnail=32")
	require.ErrorIs(t, err, casurl.ErrInvalidRequest)
}
