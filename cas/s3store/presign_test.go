package s3store_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// presignedGet GETs u and returns the status, the body and the response.
func presignedGet(t *testing.T, u string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body, resp.Header
}

// TestPresignRealS3Signatures: on the real server, which checks
// signatures (.ci/start-servers.sh gives SeaweedFS an identity), a
// presigned URL serves the bytes with the headers it was signed for, and
// is refused (403) once it has expired, and when anything it signs was
// altered: the response content type, the disposition, the key, the
// expiry, the signature itself. Anonymous GETs of the object are refused
// too, so the URL is the only way in.
func TestPresignRealS3Signatures(t *testing.T) {
	t.Parallel()
	s := testutil.NewRealS3(t)
	b := s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix(s.Prefix))
	ctx := t.Context()
	data := testutil.Bytes(21, 64<<10)
	key := cas.SumBytes(data).Key()
	require.NoError(t, b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))

	opts := cas.PresignOptions{Expires: time.Hour, ContentType: "image/png",
		ContentDisposition: `inline; filename="a.png"`, CacheControl: "private, max-age=60"}
	u, err := b.PresignGet(ctx, key, opts)
	require.NoError(t, err)
	require.Contains(t, u, "X-Amz-Signature=")
	status, body, hdr := presignedGet(t, u)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, data, body)
	require.Equal(t, "image/png", hdr.Get("Content-Type"))
	require.Equal(t, `inline; filename="a.png"`, hdr.Get("Content-Disposition"))
	require.Equal(t, "private, max-age=60", hdr.Get("Cache-Control"))

	// The object itself, without a signature: refused.
	plain, err := url.Parse(u)
	require.NoError(t, err)
	plain.RawQuery = ""
	status, _, _ = presignedGet(t, plain.String())
	require.Equal(t, http.StatusForbidden, status, "anonymous GET")

	tamper := func(name string, edit func(q url.Values, p *url.URL)) {
		t.Helper()
		p, err := url.Parse(u)
		require.NoError(t, err)
		q := p.Query()
		edit(q, p)
		p.RawQuery = q.Encode()
		status, body, _ := presignedGet(t, p.String())
		require.Equal(t, http.StatusForbidden, status, "%s: %s", name, body)
	}
	tamper("content type", func(q url.Values, _ *url.URL) { q.Set("response-content-type", "text/html") })
	tamper("disposition", func(q url.Values, _ *url.URL) { q.Del("response-content-disposition") })
	tamper("expires", func(q url.Values, _ *url.URL) { q.Set("X-Amz-Expires", "604800") })
	tamper("signature", func(q url.Values, _ *url.URL) {
		sig := []byte(q.Get("X-Amz-Signature"))
		sig[0] ^= 1 // '0'..'f' stays hex-ish; any change must fail
		q.Set("X-Amz-Signature", string(sig))
	})
	other := cas.SumBytes([]byte("other"))
	require.NoError(t, b.Put(ctx, other.Key(), strings.NewReader("other"), 5, cas.PutOptions{}))
	tamper("key", func(_ url.Values, p *url.URL) { p.Path = strings.Replace(p.Path, key, other.Key(), 1) })

	// SignedAt: the URL is dated then and works until SignedAt+Expires;
	// the same SignedAt gives the same URL.
	at := time.Now().Add(-30 * time.Second)
	u1, err := b.PresignGet(ctx, key, cas.PresignOptions{Expires: time.Minute, SignedAt: at, ContentType: "image/png"})
	require.NoError(t, err)
	u2, err := b.PresignGet(ctx, key, cas.PresignOptions{Expires: time.Minute, SignedAt: at, ContentType: "image/png"})
	require.NoError(t, err)
	require.Equal(t, u1, u2, "one URL per signing time")
	status, body, _ = presignedGet(t, u1)
	require.Equal(t, http.StatusOK, status, "dated 30 s ago, valid for 60: %s", body)
	dead, err := b.PresignGet(ctx, key, cas.PresignOptions{Expires: time.Minute, SignedAt: time.Now().Add(-70 * time.Second)})
	require.NoError(t, err, "the raw Backend signs it; the checked layer would refuse it")
	status, _, _ = presignedGet(t, dead)
	require.Equal(t, http.StatusForbidden, status, "dated 70 s ago, valid for 60")

	// Expiry: a URL valid for one second works at once and is refused
	// after it.
	u, err = b.PresignGet(ctx, key, cas.PresignOptions{Expires: time.Second})
	require.NoError(t, err)
	status, _, _ = presignedGet(t, u)
	require.Equal(t, http.StatusOK, status, "before it expires")
	time.Sleep(2500 * time.Millisecond)
	status, body, _ = presignedGet(t, u)
	require.Equal(t, http.StatusForbidden, status, "after it expired: %s", body)
}

// TestPresignGofakes3: gofakes3 serves presigned URLs with their response
// headers (the conformance suite checks that through s3store) but checks
// no signature or expiry: a URL altered or expired still works there,
// which is why the refusals are tested on the real server only. This
// test pins that, so a gofakes3 that starts checking is noticed.
func TestPresignGofakes3(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	b := s3store.New(srv.Client, srv.Bucket)
	ctx := t.Context()
	key := cas.SumBytes([]byte("hello")).Key()
	require.NoError(t, b.Put(ctx, key, strings.NewReader("hello"), 5, cas.PutOptions{}))
	u, err := b.PresignGet(ctx, key, cas.PresignOptions{Expires: time.Minute, ContentType: "image/gif"})
	require.NoError(t, err)
	p, err := url.Parse(u)
	require.NoError(t, err)
	q := p.Query()
	q.Set("X-Amz-Signature", strings.Repeat("0", 64))
	p.RawQuery = q.Encode()
	status, body, hdr := presignedGet(t, p.String())
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "hello", string(body))
	require.Equal(t, "image/gif", hdr.Get("Content-Type"))
}

// TestPresignOptions: s3store's own bounds on a URL's lifetime (SigV4:
// whole seconds, at least 1, at most 7 days), and the key prefix in the
// URL's path.
func TestPresignOptions(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithKeyPrefix("app/"))
	ctx := t.Context()
	key := cas.SumBytes([]byte("x")).Key()
	for _, d := range []time.Duration{0, 999 * time.Millisecond, s3store.MaxPresignExpires + time.Second} {
		_, err := b.PresignGet(ctx, key, cas.PresignOptions{Expires: d})
		require.ErrorIs(t, err, cas.ErrInvalidPresign, "Expires %v", d)
	}
	u, err := b.PresignGet(ctx, key, cas.PresignOptions{Expires: s3store.MaxPresignExpires + 500*time.Millisecond})
	require.NoError(t, err)
	p, err := url.Parse(u)
	require.NoError(t, err)
	require.Equal(t, "604800", p.Query().Get("X-Amz-Expires"))
	require.True(t, strings.HasSuffix(p.Path, "/app/"+key), p.Path)
	_, err = b.PresignGet(ctx, strings.Repeat("k", 1024), cas.PresignOptions{Expires: time.Minute})
	require.ErrorIs(t, err, cas.ErrInvalidKey, "key past S3's limit with the prefix")
}
