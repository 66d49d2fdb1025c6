package fsstore

import (
	"path/filepath"
	"strings"

	"github.com/casa-go/casa/cas"
)

// ErrInvalidKey is cas.ErrInvalidKey, which errors for keys that break
// cas.CheckKey wrap. Such keys are rejected before the file system is
// touched.
//
// Deprecated: use cas.ErrInvalidKey.
var ErrInvalidKey = cas.ErrInvalidKey

// tmpDir is the directory, under the root, that holds files being written.
// No key can start with it: cas.CheckKey reserves first segments that
// start with a dot for backends.
const tmpDir = ".tmp"

// casDir is the directory, under the root, of the sharded CAS keys.
const casDir = "cas"

// checkKey reports why key cannot be used, or nil. It is cas.CheckKey,
// the one rule for keys that may be written, which the checked layer
// applies to writes; a directory applies it to reads and deletes too,
// because its paths depend on it (a legacy key such as "a//b" cannot name
// a file here in the first place). A key that
// passes cannot escape the root (no "..", ".", empty segments, leading
// slash, backslash or NUL), cannot name .tmp/, and names the cas/
// directory only as a blob key.
func checkKey(key string) error { return cas.CheckKey(key) }

// relPath maps a valid key to its path relative to the root, in the
// operating system's form. A CAS key cas/<hex> lives at cas/<hex[:2]>/<hex>.
func relPath(key string) string {
	if hex, ok := strings.CutPrefix(key, cas.KeyPrefix); ok {
		return filepath.Join(casDir, hex[:2], hex)
	}
	return filepath.FromSlash(key)
}

// zstdSuffix ends the file name of a blob stored compressed
// (cas.EncodingZstd): cas/<hex[:2]>/<hex>.zst. The name is the marker: the
// bytes are never looked at to tell the forms apart, so an uploaded .zst
// file stored as it is (cas/<hex[:2]>/<hex>) reads back byte for byte.
const zstdSuffix = ".zst"

// relPathEncoded maps a blob key and an encoding to the path of the
// blob's file in that encoding, relative to the root.
func relPathEncoded(key, encoding string) string {
	if encoding == "" {
		return relPath(key)
	}
	return relPath(key) + zstdSuffix
}
