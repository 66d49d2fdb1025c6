// Package cas stores blobs by the SHA-256 of their bytes.
//
// A Hash names a blob; its Backend key is "cas/<hex>" (Hash.Key). A Store
// hashes what it is given as it writes, stores each distinct blob once
// (deduplication), verifies what it is asked to verify, and never leaves a
// half-written blob behind: a failed or cancelled Put stores nothing.
//
// A Backend is a flat key space of immutable objects with five methods
// (Stat, Open, Put, Delete, List). The backends in this module are
// fsstore (a local directory, the embedded default), memstore (tests and
// examples) and s3store (AWS S3 and S3-compatible services). A Backend may
// implement optional interfaces, found by type assertion and documented
// where they are declared, such as Stager. Package castest is the
// conformance suite every Backend runs.
//
// Errors wrap the sentinels declared here (ErrNotFound, ErrInvalidHash,
// ErrDigestMismatch, ErrTooLarge, ErrExists, ErrNoSpace, ErrUnavailable):
// test for them with errors.Is.
//
// The usual flow:
//
//	b, err := fsstore.New("/var/lib/app/blobs")
//	...
//	store := cas.New(b, cas.WithMaxSize(50<<20))
//	res, err := store.Put(ctx, upload)   // res.Hash names the bytes
//	obj, err := store.Open(ctx, res.Hash) // an io.ReadSeekCloser
package cas
