package cas

import "errors"

// Sentinel errors. Functions in casa wrap them with context; test for them
// with errors.Is.
var (
	// ErrNotFound: no object is stored under the key.
	ErrNotFound = errors.New("cas: not found")
	// ErrInvalidHash: a string is not the text form of a Hash or CAS key.
	ErrInvalidHash = errors.New("cas: invalid hash")
	// ErrDigestMismatch: bytes do not hash to the expected Hash.
	ErrDigestMismatch = errors.New("cas: digest mismatch")
	// ErrTooLarge: a blob is larger than the configured maximum.
	ErrTooLarge = errors.New("cas: blob too large")
	// ErrExists: a create-only write found the key already present.
	ErrExists = errors.New("cas: already exists")
	// ErrUnsupported: content of a type or form that cannot be processed
	// (for example a thumbnail of a blob that is no supported image).
	ErrUnsupported = errors.New("cas: unsupported content")
	// ErrCorrupt: content that claims a format but does not decode, or
	// that is too costly to process (a decode past its deadline).
	ErrCorrupt = errors.New("cas: corrupt content")
	// ErrInvalidKey: a key that may not be written (it breaks CheckKey's
	// rules), or one no Backend can hold (empty, longer than MaxKeyLen, or
	// not valid UTF-8), or one a Backend cannot address.
	ErrInvalidKey = errors.New("cas: invalid key")
	// ErrNoSpace: the backend has no room for the write (a full disk or
	// quota). Nothing was stored; the write may succeed once space is freed.
	ErrNoSpace = errors.New("cas: no space left in storage")
	// ErrUnavailable: the backend did not answer in time, or could not be
	// reached. Nothing is known to be lost; the call may succeed if retried.
	ErrUnavailable = errors.New("cas: backend unavailable")
)
