package casurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// Signer signs URLs with HMAC-SHA256 so that a client cannot change what a
// URL asks for: switch content_type to text/html, ask for a thumbnail size
// the application never handed out, or point the URL at another blob.
//
// The MAC covers the canonical form of the request: the hash (the last
// path segment; the mount prefix is not covered, so a URL survives
// http.StripPrefix and reverse proxies) and the canonical query without
// sig, in the fixed parameter order. It is sent base64url-encoded, without
// padding, in the sig parameter. Put a Signer in a Builder to sign URLs,
// and pass it to Parse to accept only signed ones. A Signer is safe for
// concurrent use.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer that signs with the first key and accepts a
// signature made with any of the keys, so that keys can be rotated: put
// the new key first and keep the old one until its URLs have expired from
// every cache. Empty keys are ignored. A Signer without keys rejects every
// URL.
func NewSigner(keys ...[]byte) *Signer {
	s := &Signer{}
	for _, k := range keys {
		if len(k) > 0 {
			s.keys = append(s.keys, append([]byte(nil), k...))
		}
	}
	return s
}

// sigLen is the length of an encoded signature.
var sigLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// mac is the HMAC of the canonical form of r under key.
func mac(key []byte, r Request) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("casurl/v1\n"))
	m.Write([]byte(r.Hash.String()))
	m.Write([]byte{'?'})
	m.Write([]byte(encodeQuery(r)))
	return m.Sum(nil)
}

// Sign returns the value of the sig parameter for r: empty when s has no
// keys.
func (s *Signer) Sign(r Request) string {
	if s == nil || len(s.keys) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(mac(s.keys[0], r))
}

// Valid reports whether sig is a signature of r under any of s's keys.
// The comparison takes constant time.
//
// Only the canonical spelling of a signature is valid: the exact string
// Sign returns. Base64 of 32 bytes leaves 2 unused low bits in its last
// character, and a lenient decoder would accept 4 spellings of every
// signature (and ignore CR and LF inside it); comparing the canonical
// encodings instead of the decoded bytes leaves exactly one.
func (s *Signer) Valid(r Request, sig string) bool {
	if s == nil || len(sig) != sigLen {
		return false
	}
	ok := false
	want := make([]byte, sigLen)
	for _, k := range s.keys {
		// Check every key so that the time taken does not reveal which one matched.
		base64.RawURLEncoding.Encode(want, mac(k, r))
		if hmac.Equal([]byte(sig), want) {
			ok = true
		}
	}
	return ok
}
