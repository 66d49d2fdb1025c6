package cas

import (
	"context"
	"io"
	"iter"
	"os"
	"time"
)

// Info describes a stored object.
type Info struct {
	Key     string    // the Backend key
	Size    int64     // length in bytes
	ModTime time.Time // when the object was written, as the Backend records it

	// Encoding is the stored form of the bytes: "" when the backend holds
	// them as they are, otherwise the name of the encoding a Store wrote
	// them in (see WithCompression; "zstd"). Size is always the size of
	// the bytes a reader gets, StoredSize that of what the backend holds.
	Encoding   string
	StoredSize int64 // bytes the backend holds; equal to Size when Encoding is ""
}

// Object is an open blob. Seek must not read the whole object: a Backend
// that stores objects remotely fetches only the ranges that are read.
type Object interface {
	io.ReadSeekCloser
	// Info describes the object.
	Info() Info
}

// FileObject is an optional interface of an Object that is an open local
// file (fsstore's objects are). A server that finds it can hand the file
// to the kernel: net/http sends an *os.File with sendfile(2), so the bytes
// never pass through user space.
//
// File returns the open, read-only file that holds the object: its bytes
// from offset 0 to Info().Size are exactly the object's. The Object owns
// the file: callers may read it, seek it and pass it to io.Copy or
// sendfile, but must not close it separately (Close of the Object closes
// it) and must not use it after that Close. The file's offset may be the
// Object's own, so a caller that reads through both seeks before it reads.
//
// A layer that wraps an Object should implement FileObject only when the
// file alone gives callers everything the wrapper promises, since they
// will read the file and bypass the wrapper.
type FileObject interface {
	Object
	// File returns the file that holds the object. It is never nil.
	File() *os.File
}

// Backend is a flat key space of immutable objects: local disk, memory, S3.
// Implementations are safe for concurrent use.
type Backend interface {
	// Stat describes the object under key, or returns an error wrapping
	// ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Open opens the object under key for reading, or returns an error
	// wrapping ErrNotFound. The caller closes it.
	Open(ctx context.Context, key string) (Object, error)
	// Put stores size bytes read from r under key. A failed Put leaves no
	// partial object under key. With opts.IfAbsent it fails with an error
	// wrapping ErrExists when key already exists.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error
	// Delete removes the object under key. Deleting a missing key is not
	// an error.
	Delete(ctx context.Context, key string) error
	// List yields every object whose key starts with prefix, in
	// lexical key order where the Backend can provide it.
	List(ctx context.Context, prefix string) iter.Seq2[Info, error]
}

// PutOptions tune a Backend.Put.
type PutOptions struct {
	// SHA256, when set, is the digest of the bytes; the Backend verifies
	// it where it can (S3: ChecksumSHA256) and fails with an error
	// wrapping ErrDigestMismatch.
	SHA256 Hash
	// IfAbsent makes the write create-only: ErrExists if the key exists
	// (S3: If-None-Match "*"; fsstore: no-clobber link).
	IfAbsent bool
	// ContentType is recorded where the Backend keeps metadata.
	ContentType string

	// Encoding marks the bytes r yields as a stored form: "" for the
	// bytes themselves, EncodingZstd for a blob a Store compressed
	// (WithCompression). The Backend records it outside the bytes (S3:
	// object metadata; fsstore: the file name; memstore: a field), never
	// guessing from them, and reports it as Info.Encoding, with
	// DecodedSize as Info.Size and the bytes it holds as Info.StoredSize.
	// Under a blob key the marked and the plain form are one object:
	// IfAbsent fails when either exists, Stat and Open find either, and
	// Delete removes both. Only a Store writes encoded blobs: the checked
	// layer refuses an encoded Put from anyone else.
	Encoding string
	// DecodedSize is the size of the decoded bytes when Encoding is set.
	DecodedSize int64
}

// Stager is an optional interface of a Backend that can take a blob's bytes
// before their key is known. Store.Put uses it to hash and write in one pass
// without a spool copy (fsstore writes straight into its own temp file).
type Stager interface {
	// Stage starts a new staged object.
	Stage(ctx context.Context) (Staged, error)
}

// Staged is an object being written by a Stager. Exactly one of Commit and
// Abort must be called, after which the Staged is finished.
type Staged interface {
	io.Writer
	// Commit publishes the written bytes under key, create-only: when key
	// exists it returns an error wrapping ErrExists and discards the bytes.
	Commit(ctx context.Context, key string) error
	// Abort discards the written bytes.
	Abort() error
}

// StagedReplacer is an optional interface of a Staged that can publish its
// bytes over an existing object, as a Put without IfAbsent does. Store.Put
// uses it to repair a blob whose stored form is corrupt: it decides before
// committing (Stat), so the common paths use Commit alone. Without it, the
// Store deletes the corrupt object and commits create-only, which leaves a
// moment in which the blob is missing.
type StagedReplacer interface {
	Staged
	// CommitReplace publishes the written bytes under key, replacing
	// atomically what is stored there: a reader sees the old object or
	// the new one. Under a blob key it replaces either form (see
	// PutOptions.Encoding). Like Commit, it finishes the Staged.
	CommitReplace(ctx context.Context, key string) error
}

// EncodedCommitter is an optional upgrade of a Staged: CommitEncoded
// publishes the written bytes as the stored form of the blob key in
// opts.Encoding (EncodingZstd), whose decoded bytes number
// opts.DecodedSize, as a Put with those options would: with opts.IfAbsent
// create-only (an error wrapping ErrExists when either form of the blob
// exists; the bytes are discarded), without it replacing either form
// atomically. opts.SHA256 must be zero (nobody hashes a stored form).
// Like Commit, it finishes the Staged. A Store with compression streams a
// compressed blob into a Staged that implements it instead of spooling the
// compressed bytes first. Only a Store commits encoded bytes: the checked
// layer's Staged does not offer the method (it could not check that the
// decoded bytes hash to the key). fsstore's Staged implements it.
type EncodedCommitter interface {
	CommitEncoded(ctx context.Context, key string, opts PutOptions) error
}
