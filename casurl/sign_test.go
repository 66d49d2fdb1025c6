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
	must := mustURL(t)
	for _, raw := range []string{
		must(b.Inline(hello, "image/png")),
		must(b.Download(hello, "application/pdf", "Prüfbericht \"final\".pdf")),
		must(b.Thumbnail(hello, 150)),
	} {
		u := mustParseURL(t, raw)
		require.Len(t, u.Query()["sig"], 1, raw)
		want, err := parseURL(t, raw, nil)
		require.NoError(t, err)
		got, err := parseURL(t, raw, s)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

func TestSignatureIsHMACOfCanonicalForm(t *testing.T) {
	t.Parallel()
	// Recompute the MAC independently from the documented canonical form.
	key := []byte("k1")
	raw := mustURL(t)(casurl.Builder{Signer: casurl.NewSigner(key)}.Thumbnail(hello, 64))
	m := hmac.New(sha256.New, key)
	m.Write([]byte("casurl/v1\n" + helloHex + "?thumbnail=64"))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	require.Equal(t, "/api/cas/"+helloHex+"?thumbnail=64&sig="+want, raw)
}

// verify is Parse of u with the Signer s.
func verify(s *casurl.Signer, u *url.URL) (casurl.Request, error) {
	return casurl.Parse(casurl.LastSegment(u), u.RawQuery, s)
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
	must := mustURL(t)
	inline := must(b.Inline(hello, "text/plain"))
	thumb := must(b.Thumbnail(hello, 150))
	download := must(b.Download(hello, "application/pdf", "a.pdf"))
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
		{"signed with another key", mustParseURL(t, must(casurl.Builder{Signer: casurl.NewSigner([]byte("other"))}.Inline(hello, "text/plain")))},
		// Other spellings of the right signature: the unused low bits of the
		// last character, a line break that a lenient decoder skips, padding.
		{"last character low bits +1", tamper(t, inline, "sig", respell(t, s, inline, 1))},
		{"last character low bits +2", tamper(t, inline, "sig", respell(t, s, inline, 2))},
		{"last character low bits +3", tamper(t, inline, "sig", respell(t, s, inline, 3))},
		{"line feed inside sig", tamper(t, inline, "sig", sigOf(t, inline)[:20]+"\n"+sigOf(t, inline)[21:])},
		{"CR LF appended", tamper(t, inline, "sig", sigOf(t, inline)+"\r\n")},
		{"padded sig", tamper(t, inline, "sig", sigOf(t, inline)+"=")},
		{"standard alphabet", tamper(t, inline, "sig", strings.NewReplacer("-", "+", "_", "/").Replace(sigOf(t, inline)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := verify(s, tt.u)
			require.ErrorIs(t, err, casurl.ErrSignature)
			require.NotErrorIs(t, err, casurl.ErrInvalidRequest)
			require.Equal(t, casurl.Request{}, r, "a request is returned only when its sig is valid")
			// Without a Signer the same URL parses: the failure is the signature alone.
			_, err = casurl.Parse(casurl.LastSegment(tt.u), tt.u.RawQuery, nil)
			require.NoError(t, err)
		})
	}
}

func TestSignerRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := []byte("old"), []byte("new")
	must := mustURL(t)
	oldURL := mustParseURL(t, must(casurl.Builder{Signer: casurl.NewSigner(oldKey)}.Thumbnail(hello, 10)))
	rotated := casurl.NewSigner(newKey, oldKey)
	newURL := mustParseURL(t, must(casurl.Builder{Signer: rotated}.Thumbnail(hello, 10)))
	require.NotEqual(t, oldURL.String(), newURL.String())

	_, err := verify(rotated, oldURL)
	require.NoError(t, err, "old key still accepted")
	_, err = verify(rotated, newURL)
	require.NoError(t, err)
	_, err = verify(casurl.NewSigner(newKey), oldURL)
	require.ErrorIs(t, err, casurl.ErrSignature, "old key retired")
	// The rotated signer signs with its first key.
	_, err = verify(casurl.NewSigner(newKey), newURL)
	require.NoError(t, err)
}

func TestSignerWithoutKeys(t *testing.T) {
	t.Parallel()
	empty := casurl.NewSigner(nil, []byte{})
	raw := mustURL(t)(casurl.Builder{Signer: empty}.Thumbnail(hello, 10))
	require.NotContains(t, raw, "sig=")
	forged := raw + "&sig=" + strings.Repeat("A", 43)
	_, err := parseURL(t, forged, empty)
	require.ErrorIs(t, err, casurl.ErrSignature)
	var nilSigner *casurl.Signer
	require.False(t, nilSigner.Valid(casurl.Request{Hash: hello, Thumbnail: 10}, strings.Repeat("A", 43)))
	require.Equal(t, "", nilSigner.Sign(casurl.Request{Hash: hello, Thumbnail: 10}))
}

func TestSignerCopiesKeys(t *testing.T) {
	t.Parallel()
	key := []byte("secret")
	s := casurl.NewSigner(key)
	raw := mustURL(t)(casurl.Builder{Signer: s}.Thumbnail(hello, 10))
	key[0] = 'X' // the caller reuses its buffer
	_, err := parseURL(t, raw, s)
	require.NoError(t, err)
}

func TestUnsignedByDefault(t *testing.T) {
	t.Parallel()
	raw := mustURL(t)(casurl.Builder{}.Download(hello, "a/b", "c"))
	require.NotContains(t, raw, "sig")
	r, err := parseURL(t, raw, casurl.NewSigner([]byte("k")))
	require.ErrorIs(t, err, casurl.ErrSignature)
	require.Contains(t, err.Error(), "no sig parameter")
	require.Equal(t, casurl.Request{}, r)
}

// sigOf is the sig parameter of a signed URL.
func sigOf(t *testing.T, raw string) string {
	t.Helper()
	return mustParseURL(t, raw).Query().Get("sig")
}

// respell returns the sig of the signed URL raw with delta added to the
// 2 unused low bits of its last base64 character: the same 32 bytes to a
// lenient decoder.
func respell(t *testing.T, s *casurl.Signer, raw string, delta int) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := sigOf(t, raw)
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	require.GreaterOrEqual(t, last, 0)
	other := sig[:len(sig)-1] + string(alphabet[last&^3|(last+delta)&3])
	require.NotEqual(t, sig, other)
	// The respelling decodes to the same bytes under the lenient decoder.
	a, err := base64.RawURLEncoding.DecodeString(sig)
	require.NoError(t, err)
	b, err := base64.RawURLEncoding.DecodeString(other)
	require.NoError(t, err)
	require.Equal(t, a, b)
	return other
}

// TestSignatureHasOneSpelling: of the 64 possible last characters of a
// signature exactly one verifies, the one Sign wrote. Before the strict
// comparison four did (the last character carries 2 unused bits).
func TestSignatureHasOneSpelling(t *testing.T) {
	t.Parallel()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	s := casurl.NewSigner([]byte("old"), []byte("new"))
	for _, r := range []casurl.Request{
		{Hash: hello, Thumbnail: 64},
		{Hash: hello, ContentType: "text/plain"},
		{Hash: cas.SumBytes([]byte("other")), ContentType: "application/pdf", Disposition: "attachment", Filename: "a.pdf"},
	} {
		sig := s.Sign(r)
		require.Len(t, sig, 43)
		var valid []string
		for i := range len(alphabet) {
			cand := sig[:42] + alphabet[i:i+1]
			if s.Valid(r, cand) {
				valid = append(valid, cand)
			}
			q := mustURL(t)(casurl.Builder{}.URL(r)) + "&sig=" + cand
			if _, err := parseURL(t, q, s); err == nil {
				require.Equal(t, sig, cand, "Parse accepts only the canonical spelling")
			} else {
				require.ErrorIs(t, err, casurl.ErrSignature)
			}
		}
		require.Equal(t, []string{sig}, valid, "exactly one last character verifies")
	}
}

// FuzzVerifySignature: a sig verifies if and only if it is exactly the
// string Sign returns; no other spelling of the same bytes passes.
func FuzzVerifySignature(f *testing.F) {
	s := casurl.NewSigner([]byte("k1"), []byte("k2"))
	r := casurl.Request{Hash: hello, Thumbnail: 64}
	good := s.Sign(r)
	f.Add(good)
	f.Add(casurl.NewSigner([]byte("k2")).Sign(r))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, good[42])
	for d := 1; d < 4; d++ {
		f.Add(good[:42] + string(alphabet[last&^3|(last+d)&3]))
	}
	f.Add(good + "=")
	f.Add(good[:10] + "\n" + good[11:])
	f.Add(good[:10] + "\r\n" + good[12:])
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, sig string) {
		want := sig == good || sig == casurl.NewSigner([]byte("k2")).Sign(r)
		if got := s.Valid(r, sig); got != want {
			t.Fatalf("Valid(%q) = %v, want %v", sig, got, want)
		}
		u := mustParseURL(t, mustURL(t)(casurl.Builder{}.URL(r))+"&sig="+url.QueryEscape(sig))
		_, err := verify(s, u)
		if (err == nil) != (want && sig != "") {
			t.Fatalf("Parse(sig=%q) = %v, want valid %v", sig, err, want)
		}
	})
}
