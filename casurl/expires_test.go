package casurl_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/casurl"
)

func TestExpiringURL(t *testing.T) {
	t.Parallel()
	signer := casurl.NewSigner([]byte("k"))
	exp := time.Unix(2000000000, 0)
	b := casurl.Builder{Signer: signer}
	raw := mustURL(t)(b.URL(casurl.Request{Hash: hello, ContentType: "image/png", Expires: exp}))
	require.Equal(t, "/api/cas/"+helloHex+"?content_type=image%2Fpng&expires=2000000000&sig=", raw[:strings.Index(raw, "sig=")+4],
		"expires comes after the other parameters, before sig")
	u := mustParseURL(t, raw)

	got, err := casurl.ParseAt(casurl.LastSegment(u), u.RawQuery, signer, exp.Add(-time.Second))
	require.NoError(t, err)
	require.True(t, exp.Equal(got.Expires))

	for _, now := range []time.Time{exp, exp.Add(time.Second), exp.Add(24 * time.Hour)} {
		_, err = casurl.ParseAt(casurl.LastSegment(u), u.RawQuery, signer, now)
		require.ErrorIs(t, err, casurl.ErrExpired, "at %s", now)
		require.ErrorIs(t, err, casurl.ErrSignature, "an expired URL is a signature failure (403)")
		require.False(t, errors.Is(err, casurl.ErrInvalidRequest))
	}

	// Without a Signer the expiry is only parsed.
	got, err = casurl.Parse(casurl.LastSegment(u), u.RawQuery, nil)
	require.NoError(t, err)
	require.True(t, exp.Equal(got.Expires))
}

func TestExpiresIsCoveredBySignature(t *testing.T) {
	t.Parallel()
	signer := casurl.NewSigner([]byte("k"))
	exp := time.Unix(2000000000, 0)
	raw := mustURL(t)(casurl.Builder{Signer: signer}.Thumbnail(hello, 100))
	raw2 := mustURL(t)(casurl.Builder{Signer: signer}.URL(casurl.Request{Hash: hello, Thumbnail: 100, Expires: exp}))
	u := mustParseURL(t, raw2)
	now := exp.Add(-time.Hour)
	for name, q := range map[string]string{
		"later":                       strings.Replace(u.RawQuery, "expires=2000000000", "expires=2000000001", 1),
		"removed":                     strings.Replace(u.RawQuery, "&expires=2000000000", "", 1),
		"added to a non-expiring URL": strings.Replace(mustParseURL(t, raw).RawQuery, "&sig=", "&expires=2000000000&sig=", 1),
	} {
		_, err := casurl.ParseAt(helloHex, q, signer, now)
		require.ErrorIs(t, err, casurl.ErrSignature, name)
		require.False(t, errors.Is(err, casurl.ErrExpired), name)
	}
}

func TestExpiringURLNeedsSigner(t *testing.T) {
	t.Parallel()
	r := casurl.Request{Hash: hello, ContentType: "a/b", Expires: time.Unix(2000000000, 0)}
	for name, b := range map[string]casurl.Builder{
		"no signer":          {},
		"signer without key": {Signer: casurl.NewSigner()},
		"TTL without signer": {TTL: time.Minute},
	} {
		x := r
		if name == "TTL without signer" {
			x.Expires = time.Time{}
		}
		raw, err := b.URL(x)
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, name)
		require.Contains(t, err.Error(), "expires", name)
		require.Empty(t, raw)
		_, ok := b.ForKey(hello.Key(), "a/b", "")
		if name == "TTL without signer" {
			require.False(t, ok, "ForKey has no URL when the Builder cannot build one")
		}
	}
}

func TestExpiresRules(t *testing.T) {
	t.Parallel()
	b := casurl.Builder{Signer: casurl.NewSigner([]byte("k"))}
	for name, exp := range map[string]time.Time{
		"sub-second":    time.Unix(2000000000, 5),
		"before 1970":   time.Unix(-5, 0),
		"the epoch":     time.Unix(0, 0),
		"after the max": time.Unix(casurl.MaxExpires+1, 0),
	} {
		_, err := b.URL(casurl.Request{Hash: hello, ContentType: "a/b", Expires: exp})
		require.ErrorIs(t, err, casurl.ErrInvalidRequest, name)
	}
	_, err := b.URL(casurl.Request{Hash: hello, ContentType: "a/b", Expires: time.Unix(casurl.MaxExpires, 0)})
	require.NoError(t, err)
}

func TestBuilderTTL(t *testing.T) {
	t.Parallel()
	signer := casurl.NewSigner([]byte("k"))
	b := casurl.Builder{Signer: signer, TTL: 90 * time.Second}
	before := time.Now()
	raw, ok := b.ForKey(hello.Key(), "application/pdf", "sheet.pdf")
	require.True(t, ok)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	got, err := casurl.Parse(casurl.LastSegment(u), u.RawQuery, signer)
	require.NoError(t, err, "a fresh URL is valid")
	require.False(t, got.Expires.Before(before.Add(90*time.Second)), "never shorter than the TTL")
	require.True(t, got.Expires.Before(before.Add(92*time.Second)))
	_, err = casurl.ParseAt(casurl.LastSegment(u), u.RawQuery, signer, before.Add(2*time.Minute))
	require.ErrorIs(t, err, casurl.ErrExpired)

	// A Request's own Expires wins over the TTL.
	exp := time.Unix(2000000000, 0)
	raw = mustURL(t)(b.URL(casurl.Request{Hash: hello, Thumbnail: 64, Expires: exp}))
	require.Contains(t, raw, "expires=2000000000")
}
