package cas

import (
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// HashLen is the length of a Hash in bytes (32); its text form is twice
// as long.
const HashLen = sha256.Size

// Hash is the SHA-256 digest of a blob's bytes. The zero Hash names no blob.
//
// A Hash works with encoding/json, encoding/xml and other text encoders
// through its text form, and with database/sql as a column value: it
// implements driver.Valuer (the text form; the zero Hash is NULL) and
// sql.Scanner (the text form, the 32 raw bytes of a binary column, or NULL).
type Hash [HashLen]byte

// Parse parses the text form of a Hash: exactly 64 lowercase hexadecimal
// characters. Anything else (uppercase, other lengths, separators) is
// rejected with an error wrapping ErrInvalidHash.
func Parse(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashLen {
		return h, fmt.Errorf("%w: want %d hex characters, got %d", ErrInvalidHash, 2*HashLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, fmt.Errorf("%w: character %d is not lowercase hex", ErrInvalidHash, i)
		}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("%w: %v", ErrInvalidHash, err)
	}
	return h, nil
}

// ParseKey parses a CAS key of the form "cas/<hex>". Any other key, such as
// a legacy UUID key, is rejected with an error wrapping ErrInvalidHash.
func ParseKey(key string) (Hash, error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return Hash{}, fmt.Errorf("%w: key does not start with %q", ErrInvalidHash, KeyPrefix)
	}
	return Parse(rest)
}

// IsKey reports whether key is a CAS key ("cas/" followed by 64 lowercase
// hex characters). Keys for which IsKey is false are legacy keys.
func IsKey(key string) bool {
	_, err := ParseKey(key)
	return err == nil
}

// SumBytes returns the Hash of b.
func SumBytes(b []byte) Hash { return Hash(sha256.Sum256(b)) }

// Sum reads r to EOF and returns the Hash of what it read and its length.
func Sum(r io.Reader) (Hash, int64, error) {
	d := sha256.New()
	n, err := io.Copy(d, r)
	if err != nil {
		return Hash{}, n, err
	}
	var h Hash
	d.Sum(h[:0])
	return h, n, nil
}

// String returns the 64 lowercase hex characters of h.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Key returns the Backend key of the blob named h: "cas/<hex>".
func (h Hash) Key() string { return KeyPrefix + h.String() }

// IsZero reports whether h is the zero Hash.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler; the text form is String's.
func (h Hash) MarshalText() ([]byte, error) {
	b := make([]byte, 2*HashLen)
	hex.Encode(b, h[:])
	return b, nil
}

// UnmarshalText implements encoding.TextUnmarshaler with the rules of Parse.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// Value implements database/sql/driver.Valuer: the 64-character text form,
// or NULL for the zero Hash, which names no blob.
func (h Hash) Value() (driver.Value, error) {
	if h.IsZero() {
		return nil, nil
	}
	return h.String(), nil
}

// Scan implements database/sql.Scanner. It accepts the text form (a string
// or []byte of 64 lowercase hex characters, with the rules of Parse), the
// 32 raw bytes of a binary column, and NULL, which scans as the zero Hash.
// Anything else is an error wrapping ErrInvalidHash, and h is unchanged.
func (h *Hash) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*h = Hash{}
		return nil
	case string:
		return h.UnmarshalText([]byte(v))
	case []byte:
		if len(v) == HashLen {
			copy(h[:], v)
			return nil
		}
		return h.UnmarshalText(v)
	default:
		return fmt.Errorf("%w: cannot scan %T into a Hash", ErrInvalidHash, src)
	}
}
