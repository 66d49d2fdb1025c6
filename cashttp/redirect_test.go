package cashttp_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// noFollow is a client that returns redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// redirectFixture is a Handler with WithRedirect over s3store on a test
// S3 server, behind a real HTTP server.
type redirectFixture struct {
	store *cas.Store
	s3    *s3test.Server // nil on the real server
	srv   *httptest.Server
	logs  *syncBuffer
}

func newRedirectFixture(t *testing.T, b cas.Backend, s3 *s3test.Server, opts ...cashttp.Option) *redirectFixture {
	t.Helper()
	f := &redirectFixture{store: cas.New(b), s3: s3, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := cashttp.NewHandler(f.store, append([]cashttp.Option{cashttp.WithLogger(logger)}, opts...)...)
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *redirectFixture) put(t *testing.T, p []byte) cas.Hash {
	t.Helper()
	res, err := f.store.Put(t.Context(), bytes.NewReader(p))
	require.NoError(t, err)
	if f.s3 != nil {
		f.s3.ResetStats()
	}
	return res.Hash
}

// get sends a GET (or method) of target without following redirects.
func (f *redirectFixture) get(t *testing.T, target string, hdr ...string) response {
	t.Helper()
	return f.do(t, http.MethodGet, target, hdr...)
}

func (f *redirectFixture) do(t *testing.T, method, target string, hdr ...string) response {
	t.Helper()
	return doURL(t, noFollow, method, f.srv.URL+target, hdr...)
}

// maxAgeOf parses "private, max-age=N".
func maxAgeOf(t *testing.T, cc string) int {
	t.Helper()
	n, ok := strings.CutPrefix(cc, "private, max-age=")
	require.True(t, ok, "Cache-Control %q", cc)
	v, err := strconv.Atoi(n)
	require.NoError(t, err)
	return v
}

// requireRedirect checks a 307 to a presigned URL and returns the URL.
func requireRedirect(t *testing.T, r response, lifetime time.Duration) *url.URL {
	t.Helper()
	require.Equal(t, http.StatusTemporaryRedirect, r.StatusCode, "%s", r.body)
	require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"))
	require.Empty(t, r.Header.Get("ETag"))
	age := maxAgeOf(t, r.Header.Get("Cache-Control"))
	require.Less(t, time.Duration(age)*time.Second, lifetime, "the 307 is cached for less than the URL lives")
	require.Empty(t, r.body, "a 307 with no body")
	u, err := url.Parse(r.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, u.IsAbs(), u.String())
	require.Less(t, time.Duration(age)*time.Second, time.Until(presignedEnd(t, u)), "the 307 is cached for less than the URL has left")
	require.LessOrEqual(t, time.Until(presignedEnd(t, u)), lifetime)
	return u
}

// presignedEnd is when a presigned URL stops working: X-Amz-Date plus
// X-Amz-Expires.
func presignedEnd(t *testing.T, u *url.URL) time.Time {
	t.Helper()
	exp, err := strconv.Atoi(u.Query().Get("X-Amz-Expires"))
	require.NoError(t, err, u.String())
	at, err := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date"))
	require.NoError(t, err, u.String())
	return at.Add(time.Duration(exp) * time.Second)
}

// TestRedirect: a GET of a blob over the minimum size, of an allow-listed
// type, is answered with 307 to a presigned URL that serves the bytes with
// the content type, disposition and a private Cache-Control, without any
// GetObject through the app; everything the redirect would weaken is
// proxied as before (each case says why), and 304 needs no backend call.
func TestRedirect(t *testing.T) {
	t.Parallel()
	const lifetime = time.Minute
	s3 := s3test.New(t)
	f := newRedirectFixture(t, s3store.New(s3.Client, s3.Bucket), s3, cashttp.WithRedirect(1000, lifetime))
	big := testutil.Bytes(1, 4000)
	small := testutil.Bytes(2, 999)
	hb, hs := f.put(t, big), f.put(t, small)
	urls := casurl.Builder{}
	png, err := urls.Inline(hb, "image/png")
	require.NoError(t, err)
	dl, err := urls.Download(hb, "application/pdf", "Data sheet.pdf")
	require.NoError(t, err)

	r := f.get(t, png)
	loc := requireRedirect(t, r, lifetime)
	require.Equal(t, int64(0), s3.Requests("GetObject"), "no byte through the app")
	require.Equal(t, int64(1), s3.Requests("HeadObject"), "one metadata call: size and encoding decide")
	target := doURL(t, noFollow, http.MethodGet, loc.String())
	require.Equal(t, http.StatusOK, target.StatusCode)
	require.Equal(t, big, target.body)
	require.Equal(t, "image/png", target.Header.Get("Content-Type"))
	require.Equal(t, lifetime/time.Second, time.Duration(maxAgeOf(t, target.Header.Get("Cache-Control"))))

	r = f.get(t, dl)
	loc = requireRedirect(t, r, lifetime)
	target = doURL(t, noFollow, http.MethodGet, loc.String())
	require.Equal(t, big, target.body)
	require.Equal(t, "application/pdf", target.Header.Get("Content-Type"))
	require.Equal(t, `attachment; filename="Data sheet.pdf"; filename*=UTF-8''Data%20sheet.pdf`, target.Header.Get("Content-Disposition"))

	// A single Range is redirected; the service serves it.
	r = f.get(t, png, "Range", "bytes=100-199")
	loc = requireRedirect(t, r, lifetime)
	target = doURL(t, noFollow, http.MethodGet, loc.String(), "Range", "bytes=100-199")
	require.Equal(t, http.StatusPartialContent, target.StatusCode)
	require.Equal(t, big[100:200], target.body)

	// 304 from the ETag alone: no backend call at all.
	s3.ResetStats()
	r = f.get(t, png, "If-None-Match", `"`+hb.String()+`"`)
	require.Equal(t, http.StatusNotModified, r.StatusCode)
	require.Equal(t, int64(0), s3.Requests("HeadObject")+s3.Requests("GetObject"))

	// Proxied: the rule that keeps each one here.
	proxied := map[string]struct {
		method, target string
		hdr            []string
		status         int
	}{
		"below the minimum size":   {http.MethodGet, must(urls.Inline(hs, "image/png")), nil, http.StatusOK},
		"HEAD":                     {http.MethodHead, png, nil, http.StatusOK},
		"HTML (script-capable)":    {http.MethodGet, must(urls.Inline(hb, "text/html")), nil, http.StatusOK},
		"SVG (script-capable)":     {http.MethodGet, must(urls.Inline(hb, "image/svg+xml")), nil, http.StatusOK},
		"text/plain (sniffable)":   {http.MethodGet, must(urls.Inline(hb, "text/plain")), nil, http.StatusOK},
		"octet-stream (sniffable)": {http.MethodGet, must(urls.Inline(hb, "application/octet-stream")), nil, http.StatusOK},
		"JSON (not listed)":        {http.MethodGet, must(urls.Inline(hb, "application/json")), nil, http.StatusOK},
		"several ranges":           {http.MethodGet, png, []string{"Range", "bytes=0-1,5-6"}, http.StatusPartialContent},
		"refused range":            {http.MethodGet, png, []string{"Range", "bytes=5000-"}, http.StatusRequestedRangeNotSatisfiable},
		"range with whitespace":    {http.MethodGet, png, []string{"Range", "bytes= 0-1"}, http.StatusPartialContent},
		"range in another unit":    {http.MethodGet, png, []string{"Range", "items=0-1"}, http.StatusOK},
		"If-Match":                 {http.MethodGet, png, []string{"If-Match", `"` + hb.String() + `"`}, http.StatusOK},
		"If-None-Match, no match":  {http.MethodGet, png, []string{"If-None-Match", `"other"`}, http.StatusOK},
		"If-Range":                 {http.MethodGet, png, []string{"Range", "bytes=0-1", "If-Range", `"` + hb.String() + `"`}, http.StatusPartialContent},
		"If-Unmodified-Since":      {http.MethodGet, png, []string{"If-Unmodified-Since", time.Now().UTC().Format(http.TimeFormat)}, http.StatusOK},
	}
	for name, tc := range proxied {
		r := f.do(t, tc.method, tc.target, tc.hdr...)
		require.Equal(t, tc.status, r.StatusCode, "%s: %s", name, r.body)
		require.Empty(t, r.Header.Get("Location"), name)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), name)
	}
	r = f.get(t, must(urls.Inline(hb, "image/svg+xml")))
	require.Equal(t, "sandbox", r.Header.Get("Content-Security-Policy"), "proxied with the handler's own headers")
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// TestRedirectSignedURL: with signing on, a missing, wrong or expired
// signature is refused (403) before the backend is asked anything, so no
// presigned URL is ever handed out for it; an expiring casurl gets a
// presigned URL that does not outlive it.
func TestRedirectSignedURL(t *testing.T) {
	t.Parallel()
	s3 := s3test.New(t)
	signer := casurl.NewSigner([]byte("redirect key"))
	f := newRedirectFixture(t, s3store.New(s3.Client, s3.Bucket), s3,
		cashttp.WithSigner(signer), cashttp.WithRedirect(0, time.Hour))
	h := f.put(t, testutil.Bytes(3, 5000))

	unsigned := must(casurl.Builder{}.Inline(h, "image/jpeg"))
	foreign := must(casurl.Builder{Signer: casurl.NewSigner([]byte("attacker"))}.Inline(h, "image/jpeg"))
	expired := must(casurl.Builder{Signer: signer}.URL(casurl.Request{Hash: h, ContentType: "image/jpeg", Expires: time.Now().Add(-time.Minute).Truncate(time.Second)}))
	for _, target := range []string{unsigned, foreign, expired} {
		r := f.get(t, target)
		require.Equal(t, http.StatusForbidden, r.StatusCode, target)
		require.Empty(t, r.Header.Get("Location"))
	}
	require.Equal(t, int64(0), s3.Requests("HeadObject"), "refused before the backend")

	r := f.get(t, must(casurl.Builder{Signer: signer, TTL: 20 * time.Second}.Inline(h, "image/jpeg")))
	loc := requireRedirect(t, r, 20*time.Second+time.Second)
	require.LessOrEqual(t, time.Until(presignedEnd(t, loc)), 21*time.Second, "the presigned URL ends with the casurl")
	require.LessOrEqual(t, maxAgeOf(t, r.Header.Get("Cache-Control")), 10)

	forever := must(casurl.Builder{Signer: signer}.Inline(h, "image/jpeg"))
	first := requireRedirect(t, f.get(t, forever), time.Hour)
	second := requireRedirect(t, f.get(t, forever), time.Hour)
	// One URL per window of half the lifetime, on every replica: dated to
	// the window's start, so browsers reuse their cached response.
	at, err := time.Parse("20060102T150405Z", first.Query().Get("X-Amz-Date"))
	require.NoError(t, err)
	require.Equal(t, at, at.Truncate(30*time.Minute), "dated to a window start")
	require.WithinDuration(t, time.Now().Add(-15*time.Minute), at, 15*time.Minute+time.Second)
	if first.Query().Get("X-Amz-Date") == second.Query().Get("X-Amz-Date") {
		require.Equal(t, first.String(), second.String(), "the same URL within a window")
	}
	other := newRedirectFixture(t, s3store.New(s3.Client, s3.Bucket), s3,
		cashttp.WithSigner(signer), cashttp.WithRedirect(0, time.Hour))
	third := requireRedirect(t, other.get(t, forever), time.Hour)
	if first.Query().Get("X-Amz-Date") == third.Query().Get("X-Amz-Date") {
		require.Equal(t, first.String(), third.String(), "another replica signs the same URL")
	}
}

// TestRedirectRefusals: a compressed blob (Encoding != ""), a backend that
// cannot presign, and a presign that fails are proxied, and the last two
// say why in the logs.
func TestRedirectRefusals(t *testing.T) {
	t.Parallel()
	big := testutil.Bytes(4, 3000)
	png := func(h cas.Hash) string { return must(casurl.Builder{}.Inline(h, "image/png")) }

	s3 := s3test.New(t)
	f := newRedirectFixture(t, s3store.New(s3.Client, s3.Bucket), s3, cashttp.WithRedirect(0, time.Minute))
	text := testutil.Text(5, 200<<10)
	res, err := cas.New(f.store.Backend(), cas.WithCompression(cas.Compression{})).Put(t.Context(), bytes.NewReader(text))
	require.NoError(t, err)
	info, err := f.store.Stat(t.Context(), res.Hash)
	require.NoError(t, err)
	require.Equal(t, cas.EncodingZstd, info.Encoding, "the blob is stored compressed")
	r := f.get(t, png(res.Hash))
	require.Equal(t, http.StatusOK, r.StatusCode, "a compressed blob is decoded here, not redirected")
	require.Equal(t, text, r.body)

	f = newRedirectFixture(t, memstore.New(), nil, cashttp.WithRedirect(0, time.Minute))
	h := f.put(t, big)
	r = f.get(t, png(h))
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, f.logs.String(), "cannot presign")

	// s3store refuses a lifetime past 7 days: logged, proxied.
	f = newRedirectFixture(t, s3store.New(s3.Client, s3.Bucket), s3, cashttp.WithRedirect(0, 8*24*time.Hour))
	h = f.put(t, big)
	r = f.get(t, png(h))
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, big, r.body)
	require.Contains(t, f.logs.String(), "presign failed")
}

// TestRedirectOptionPanics: nonsense values panic when the option is made.
func TestRedirectOptionPanics(t *testing.T) {
	t.Parallel()
	for _, f := range []func(){
		func() { cashttp.WithRedirect(-1, time.Minute) },
		func() { cashttp.WithRedirect(0, time.Second) },
		func() { cashttp.WithRedirect(0, cashttp.MinRedirectLifetime-time.Second) },
		func() { cashttp.WithRedirect(0, 0) },
	} {
		require.Panics(t, f)
	}
	types := cashttp.RedirectableTypes()
	require.True(t, slices.IsSorted(types), "sorted (looked up by binary search)")
	require.Contains(t, types, "image/png")
	require.NotContains(t, types, "image/svg+xml")
}

// TestRedirectEveryListedType: each type of RedirectableTypes is
// redirected (also with a parameter and in upper case), and the presigned
// response carries it.
func TestRedirectEveryListedType(t *testing.T) {
	t.Parallel()
	s3 := s3test.New(t)
	f := newRedirectFixture(t, s3store.New(s3.Client, s3.Bucket), s3, cashttp.WithRedirect(0, time.Minute))
	h := f.put(t, []byte("any bytes"))
	for _, ct := range cashttp.RedirectableTypes() {
		for _, asked := range []string{ct, strings.ToUpper(ct), ct + "; charset=binary"} {
			r := f.get(t, must(casurl.Builder{}.Inline(h, asked)))
			loc := requireRedirect(t, r, time.Minute)
			require.Equal(t, asked, loc.Query().Get("response-content-type"), asked)
		}
	}
}

// TestRedirectRealS3: against the real server, which checks signatures,
// the redirect target serves the bytes with the headers the URL asked for
// (followed by net/http's client as a browser would), an altered target
// is refused, and a target is refused once the expiring casurl that led
// to it has expired (the presigned URL, dated to the start of its window,
// ends with the casurl).
func TestRedirectRealS3(t *testing.T) {
	t.Parallel()
	s := testutil.NewRealS3(t)
	b := s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix(s.Prefix))
	const lifetime = time.Hour
	signer := casurl.NewSigner([]byte("real s3 key"))
	f := newRedirectFixture(t, b, nil, cashttp.WithSigner(signer), cashttp.WithRedirect(1<<10, lifetime))
	data := testutil.Bytes(5, 300<<10)
	h := f.put(t, data)
	// A casurl that expires in 3 to 4 s: the presigned URL ends with it.
	target := must(casurl.Builder{Signer: signer, TTL: 3 * time.Second}.Download(h, "video/mp4", "clip.mp4"))

	// Followed, as a browser does.
	r := doURL(t, http.DefaultClient, http.MethodGet, f.srv.URL+target)
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	require.Equal(t, data, r.body)
	require.Equal(t, "video/mp4", r.Header.Get("Content-Type"))
	require.Equal(t, `attachment; filename="clip.mp4"; filename*=UTF-8''clip.mp4`, r.Header.Get("Content-Disposition"))
	require.NotEqual(t, f.srv.URL, "http://"+r.Request.URL.Host, "served by the storage service")

	r = f.get(t, target, "Range", "bytes=1000-1999")
	loc := requireRedirect(t, r, lifetime)
	ranged := doURL(t, noFollow, http.MethodGet, loc.String(), "Range", "bytes=1000-1999")
	require.Equal(t, http.StatusPartialContent, ranged.StatusCode)
	require.Equal(t, data[1000:2000], ranged.body)

	q := loc.Query()
	q.Set("response-content-type", "text/html")
	altered := *loc
	altered.RawQuery = q.Encode()
	require.Equal(t, http.StatusForbidden, doURL(t, noFollow, http.MethodGet, altered.String()).StatusCode, "altered content type")

	time.Sleep(time.Until(presignedEnd(t, loc)) + 1500*time.Millisecond)
	late := doURL(t, noFollow, http.MethodGet, loc.String())
	require.Equal(t, http.StatusForbidden, late.StatusCode, "expired: %s", late.body)
}
