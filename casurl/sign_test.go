package casurl_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

func TestSignedRoundTrip(t *testing.T) {
	t.Parallel()
	s := casurl.NewSigner([]byte("secret"))
	b := casurl.Builder{Signer: s}
	for _, raw := range []string{
		b.Inline(hello, "image/png"),
		b.Download(hello, "application/pdf", "Prüfbericht \"final\".pdf"),
		b.Thumbnail(hello, 150),
	} {
		u := mustParseURL(t, raw)
		require.Len(t, u.Query()["sig"], 1, raw)
		want, err := casurl.Parse(u)
		require.NoError(t, err)
		got, err := s.Verify(u)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

func TestSignatureIsHMACOfCanonicalForm(t *testing.T) {
	t.Parallel()
	// Recompute the MAC independently from the documented canonical form.
	key := []byte("k1")
	raw := casurl.Builder{Signer: casurl.NewSigner(key)}.Thumbnail(hello, 64)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("casurl/v1\n" + helloHex + "?thumbnail=64"))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	require.Equal(t, "/api/cas/"+helloHex+"?thumbnail=64&sig="+want, raw)
}

// tamper rewrites one query parameter of a signed URL, keeping its sig.
func tamper(t *testing.T, raw, key, value string) *url.URL {
	t.Helper()
	u := mustParseURL(t, raw)
	q := u.Query()
	if value == "" {
		q.Del(key)
	} else {
		q.Set(key, value)
	}
	u.RawQuery = q.Encode()
	return u
}

func TestSignatureStopsTampering(t *testing.T) {
	t.Parallel()
	s := casurl.NewSigner([]byte("secret"))
	b := casurl.Builder{Signer: s}
	inline := b.Inline(hello, "text/plain")
	thumb := b.Thumbnail(hello, 150)
	download := b.Download(hello, "application/pdf", "a.pdf")
	other := cas.SumBytes([]byte("other"))
	tests := []struct {
		name string
		u    *url.URL
	}{
		{"content type to text/html", tamper(t, inline, "content_type", "text/html")},
		{"add disposition", tamper(t, inline, "disposition", "inline")},
		{"change filename", tamper(t, download, "filename", "b.exe")},
		{"drop disposition", tamper(t, download, "disposition", "")},
		{"other thumbnail size", tamper(t, thumb, "thumbnail", "1000")},
		{"other hash", mustParseURL(t, strings.Replace(thumb, helloHex, other.String(), 1))},
		{"missing sig", tamper(t, inline, "sig", "")},
		{"garbage sig", tamper(t, inline, "sig", "not-a-signature")},
		{"truncated sig", tamper(t, inline, "sig", mustParseURL(t, inline).Query().Get("sig")[:42])},
		{"sig of another URL", tamper(t, inline, "sig", mustParseURL(t, thumb).Query().Get("sig"))},
		{"signed with another key", mustParseURL(t, casurl.Builder{Signer: casurl.NewSigner([]byte("other"))}.Inline(hello, "text/plain"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Verify(tt.u)
			require.ErrorIs(t, err, casurl.ErrSignature)
			require.NotErrorIs(t, err, casurl.ErrInvalidRequest)
		})
	}
}

func TestSignerRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := []byte("old"), []byte("new")
	oldURL := mustParseURL(t, casurl.Builder{Signer: casurl.NewSigner(oldKey)}.Thumbnail(hello, 10))
	rotated := casurl.NewSigner(newKey, oldKey)
	newURL := mustParseURL(t, casurl.Builder{Signer: rotated}.Thumbnail(hello, 10))
	require.NotEqual(t, oldURL.String(), newURL.String())

	_, err := rotated.Verify(oldURL)
	require.NoError(t, err, "old key still accepted")
	_, err = rotated.Verify(newURL)
	require.NoError(t, err)
	_, err = casurl.NewSigner(newKey).Verify(oldURL)
	require.ErrorIs(t, err, casurl.ErrSignature, "old key retired")
	// The rotated signer signs with its first key.
	_, err = casurl.NewSigner(newKey).Verify(newURL)
	require.NoError(t, err)
}

func TestSignerWithoutKeys(t *testing.T) {
	t.Parallel()
	empty := casurl.NewSigner(nil, []byte{})
	raw := casurl.Builder{Signer: empty}.Thumbnail(hello, 10)
	require.NotContains(t, raw, "sig=")
	forged := raw + "&sig=" + strings.Repeat("A", 43)
	_, err := empty.Verify(mustParseURL(t, forged))
	require.ErrorIs(t, err, casurl.ErrSignature)
	var nilSigner *casurl.Signer
	require.False(t, nilSigner.Valid(casurl.Request{Hash: hello, Thumbnail: 10}, strings.Repeat("A", 43)))
	require.Equal(t, "", nilSigner.Sign(casurl.Request{Hash: hello, Thumbnail: 10}))
}

func TestSignerCopiesKeys(t *testing.T) {
	t.Parallel()
	key := []byte("secret")
	s := casurl.NewSigner(key)
	raw := casurl.Builder{Signer: s}.Thumbnail(hello, 10)
	key[0] = 'X' // the caller reuses its buffer
	_, err := s.Verify(mustParseURL(t, raw))
	require.NoError(t, err)
}

func TestUnsignedByDefault(t *testing.T) {
	t.Parallel()
	raw := casurl.Builder{}.Download(hello, "a/b", "c")
	require.NotContains(t, raw, "sig")
	_, err := casurl.NewSigner([]byte("k")).Verify(mustParseURL(t, raw))
	require.ErrorIs(t, err, casurl.ErrSignature)
}
