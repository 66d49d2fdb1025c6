package fsstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/casa-go/casa/cas"
)

// ErrInvalidKey is wrapped by errors for keys that cannot be stored safely
// in a directory: keys that would escape the root or collide with the
// store's own files. Such keys are rejected before the file system is
// touched.
var ErrInvalidKey = errors.New("fsstore: invalid key")

// maxSegment is the longest path segment most file systems accept.
const maxSegment = 255

// maxKey is the longest key, in bytes: S3's limit, and far below PATH_MAX.
const maxKey = 1024

// tmpDir is the directory, under the root, that holds files being written.
// A key cannot start with it.
const tmpDir = ".tmp"

// casDir is the directory, under the root, of the sharded CAS keys.
const casDir = "cas"

// checkKey reports why key cannot be stored, or nil.
//
// A key is a slash-separated sequence of non-empty segments other than "."
// and "..", of valid UTF-8 without NUL or backslash, each at most 255
// bytes, at most 1024 bytes in all. The first segment ".tmp" is reserved. Under "cas/" only CAS keys
// ("cas/" and 64 lowercase hex characters) are allowed, since that
// directory holds the sharded blobs.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > maxKey {
		return fmt.Errorf("%w: key longer than %d bytes", ErrInvalidKey, maxKey)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	if i := strings.IndexAny(key, "\x00\\"); i >= 0 {
		return fmt.Errorf("%w: %q contains %q", ErrInvalidKey, key, key[i])
	}
	if key[0] == '/' || key[len(key)-1] == '/' {
		return fmt.Errorf("%w: %q starts or ends with a slash", ErrInvalidKey, key)
	}
	first := true
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, seg)
		case len(seg) > maxSegment:
			return fmt.Errorf("%w: %q has a segment longer than %d bytes", ErrInvalidKey, key, maxSegment)
		case first && seg == tmpDir:
			return fmt.Errorf("%w: %q: %s/ is reserved", ErrInvalidKey, key, tmpDir)
		case first && seg == casDir && !cas.IsKey(key):
			return fmt.Errorf("%w: %q: only cas/<64 lowercase hex> keys may start with cas", ErrInvalidKey, key)
		}
		first = false
	}
	return nil
}

// relPath maps a valid key to its path relative to the root, in the
// operating system's form. A CAS key cas/<hex> lives at cas/<hex[:2]>/<hex>.
func relPath(key string) string {
	if hex, ok := strings.CutPrefix(key, cas.KeyPrefix); ok {
		return filepath.Join(casDir, hex[:2], hex)
	}
	return filepath.FromSlash(key)
}
