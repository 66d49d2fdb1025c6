package cashttp_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
)

// TestExpiringURLIsNotCachedForever: a signed URL with an expiry is served
// with private caching that ends when the URL does (for content, 304 and
// thumbnails), never with the shared, immutable year of a URL that does not
// expire; once expired it is 403 no-store.
func TestExpiringURLIsNotCachedForever(t *testing.T) {
	t.Parallel()
	signer := casurl.NewSigner([]byte("expiring key"))
	store, h := storeWith(t, []byte("a private datasheet"))
	thumbs := &thumbFunc{f: func(context.Context, cas.Hash, int) ([]byte, error) { return []byte("jpeg"), nil }}
	hd := cashttp.NewHandler(store, cashttp.WithSigner(signer), cashttp.WithThumbnails(thumbs))

	const ttl = 10 * time.Minute
	b := casurl.Builder{Signer: signer, TTL: ttl}
	content, err := b.Inline(h, "application/pdf")
	require.NoError(t, err)
	thumb, err := b.Thumbnail(h, 64)
	require.NoError(t, err)

	maxAge := func(rec interface{ Header() http.Header }) int {
		cc := rec.Header().Get("Cache-Control")
		require.True(t, strings.HasPrefix(cc, "private, max-age="), "Cache-Control %q", cc)
		require.NotContains(t, cc, "immutable")
		n, err := strconv.Atoi(strings.TrimPrefix(cc, "private, max-age="))
		require.NoError(t, err, cc)
		return n
	}
	for _, target := range []string{content, thumb} {
		rec := serve(hd, http.MethodGet, target)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		n := maxAge(rec)
		require.Greater(t, n, 0)
		require.LessOrEqual(t, n, int(ttl/time.Second))

		rec = serve(hd, http.MethodGet, target, "If-None-Match", rec.Header().Get("ETag"))
		require.Equal(t, http.StatusNotModified, rec.Code)
		require.LessOrEqual(t, maxAge(rec), int(ttl/time.Second))
	}

	// The same blob by a URL that does not expire keeps immutable caching.
	forever, err := casurl.Builder{Signer: signer}.Inline(h, "application/pdf")
	require.NoError(t, err)
	rec := serve(hd, http.MethodGet, forever)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, cashttp.CacheControl, rec.Header().Get("Cache-Control"))

	// An expired URL is refused.
	old, err := casurl.Builder{Signer: signer}.URL(casurl.Request{Hash: h, ContentType: "application/pdf",
		Expires: time.Now().Add(-time.Minute).Truncate(time.Second)})
	require.NoError(t, err)
	rec = serve(hd, http.MethodGet, old)
	requireErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), http.StatusForbidden)
}
