package cas

import (
	"fmt"
	"strings"
)

// The key space of a Backend that a Store uses has three parts, and every
// casa package names them through this file, never by spelling a prefix:
//
//   - blobs: KeyPrefix + hex ("cas/<hex>"), named by their hash (Hash.Key);
//   - derived objects: data computed from a blob, such as its thumbnails,
//     under a derived prefix (ThumbnailPrefix: "thumbnails/<hex>_..."). They
//     can be regenerated, are never legacy keys, and migrate.Cleanup never
//     deletes them (IsDerivedKey);
//   - everything else: application keys, such as the UUID keys of files
//     stored before CAS (legacy keys).
//
// A first segment that starts with a dot (such as fsstore's ".tmp") is
// reserved for a Backend's own bookkeeping: CheckKey refuses it.
const (
	// KeyPrefix is the prefix of every blob key: a blob with hash h is
	// stored under KeyPrefix + h.String().
	KeyPrefix = "cas/"
	// ThumbnailPrefix is the derived prefix of thumbnails:
	// "thumbnails/<hex>_<N>.jpg" is a thumbnail of blob <hex>.
	ThumbnailPrefix = "thumbnails/"
)

// MaxKeyLen is the longest key, in bytes (S3's limit); MaxSegmentLen the
// longest slash-separated segment (most file systems' NAME_MAX).
const (
	MaxKeyLen     = 1024
	MaxSegmentLen = 255
)

// DerivedPrefixes returns the prefixes of derived objects, in a new slice.
func DerivedPrefixes() []string { return []string{ThumbnailPrefix} }

// IsDerivedKey reports whether key names a derived object: one under a
// prefix that DerivedPrefixes lists.
func IsDerivedKey(key string) bool {
	for _, p := range DerivedPrefixes() {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// DerivedKey returns the key of an object derived from blob h under prefix
// (one of DerivedPrefixes): prefix + hex + "_" + name. The name tells the
// derived objects of one blob apart, such as "150.jpg" for a thumbnail.
func DerivedKey(prefix string, h Hash, name string) string {
	return prefix + h.String() + "_" + name
}

// CheckKey reports why key cannot be written to a Backend, wrapping
// ErrInvalidKey, or nil. It is the one rule for what may be written, for
// every Backend, so that a key stored in one backend can be copied to any
// other:
//
//   - a slash-separated sequence of non-empty segments other than "." and
//     "..", without a leading or trailing slash;
//   - valid UTF-8 without NUL, other control characters or backslash;
//   - at most MaxSegmentLen bytes a segment and MaxKeyLen in all;
//   - a first segment that does not start with "." (reserved for backends);
//   - under KeyPrefix, in any letter case, only blob keys (KeyPrefix and
//     64 lowercase hex).
//
// Any key a Backend holds can be read, migrated and deleted: keys written
// before casa often break this rule ("/uploads/a.pdf", "a//b.pdf",
// ".well-known/x"), so Checked applies CheckKey to writes only (Put and a
// Staged's Commit) and to Stat, Open and Delete only the rule that every
// stored key keeps: non-empty, at most MaxKeyLen bytes, valid UTF-8. A
// Backend may still refuse a key it cannot address (fsstore applies
// CheckKey to every key, because its paths depend on it).
func CheckKey(key string) error {
	if err := checkHeldKey(key); err != nil {
		return err
	}
	switch {
	case key[0] == '/' || key[len(key)-1] == '/':
		return fmt.Errorf("%w: %q starts or ends with a slash", ErrInvalidKey, key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%w: %q contains %q", ErrInvalidKey, key, r)
		}
	}
	first := true
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, seg)
		case len(seg) > MaxSegmentLen:
			return fmt.Errorf("%w: %q has a segment longer than %d bytes", ErrInvalidKey, key, MaxSegmentLen)
		case first && seg[0] == '.':
			return fmt.Errorf("%w: %q: a first segment starting with a dot is reserved", ErrInvalidKey, key)
		case first && strings.EqualFold(seg+"/", KeyPrefix) && !IsKey(key):
			// Case-folded: "CAS/" is the same directory on a
			// case-insensitive file system.
			return fmt.Errorf("%w: %q: only %s<64 lowercase hex> keys may start with %s", ErrInvalidKey, key, KeyPrefix, KeyPrefix)
		}
		first = false
	}
	return nil
}
