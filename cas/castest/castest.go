// Package castest is the conformance suite every cas.Backend runs.
//
// A Backend's test calls Run with a constructor for empty Backends:
//
//	func TestConformance(t *testing.T) {
//		castest.Run(t, func(t *testing.T) cas.Backend { return memstore.New() })
//	}
//
// Run checks the semantics the rest of casa relies on: ErrNotFound and
// ErrExists mapping, create-only writes, digest verification, failed writes
// that leave nothing behind, ranged reads through Seek, ordered and
// prefix-filtered listing across pages, non-CAS keys, concurrent use, and a
// cas.Store round trip over the Backend. When the Backend implements
// cas.Stager the Stage/Commit/Abort contract is checked too (through
// cas.Checked: a Commit under a blob key whose bytes do not hash to it, or
// under a derived prefix without a cas.DerivedKey, publishes nothing; a
// cas.StagedReplacer's CommitReplace replaces an object), and when its
// Objects implement cas.FileObject, that the file holds exactly the
// object's bytes and is closed with the Object. The encoding marker of a
// blob a Store stored compressed (cas.WithCompression) must be recorded
// outside the bytes and reported by Stat, Open and List with the decoded
// Size and the StoredSize; bytes that merely look compressed are stored
// as they are. When its Staged implements cas.EncodedCommitter, an encoded
// commit must publish the blob's encoded form create-only against either
// form, and refuse a decoded size its seek table does not record.
// When it implements
// cas.Presigner, a GET of a presigned URL (net/http's default client)
// must return the object's bytes with the headers asked for, serve a
// Range, and fail for a missing key; cas.Checked must be a Presigner
// exactly when the Backend is, and refuse invalid options. (That a URL
// stops working once it expires, or once altered, is the service's
// part: test fakes such as gofakes3 check no signatures, so the suite
// cannot ask it of every Backend; s3store tests it on a real server.)
//
// The suite uses only the standard testing package and go-cmp, so a Backend
// outside this module can run it without further test dependencies.
package castest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/casa-go/casa/cas"
)

// Run runs the conformance suite against Backends made by newBackend, which
// must return a new, empty Backend each time it is called (one per
// subtest). Subtests run in parallel, so newBackend must be safe to call
// from several goroutines; it may register cleanups with t.Cleanup.
//
// The suite has two parts. The subtests under "Thin" call the Backend
// directly and check the thin contract every Backend keeps (see
// cas.Backend): what it stores, create-only writes, a failed read that
// stores nothing, Delete, ordered listing, ranged reads, Stager and
// FileObject. The subtests under "Checked" call it through cas.Checked and
// check the full contract the rest of casa relies on: exact sizes, digest
// verification, key validation, contexts, and a cas.Store round trip.
func Run(t *testing.T, newBackend func(t *testing.T) cas.Backend) {
	t.Helper()
	type test struct {
		name string
		fn   func(t *testing.T, b cas.Backend)
		// raw, instead of fn: also given the Backend unwrapped.
		raw func(t *testing.T, raw, b cas.Backend)
	}
	thin := []test{
		{"Missing", testMissing, nil},
		{"RoundTrip", testRoundTrip, nil},
		{"Empty", testEmpty, nil},
		{"Delete", testDelete, nil},
		{"IfAbsent", testIfAbsent, nil},
		{"Replace", testReplace, nil},
		{"FailingReader", testFailingReader, nil},
		{"Seek", testSeek, nil},
		{"List", testList, nil},
		{"ListBreak", testListBreak, nil},
		{"ListMany", testListMany, nil},
		{"NonCASKeys", testNonCASKeys, nil},
		{"Concurrent", testConcurrent, nil},
		{"ConcurrentIfAbsent", testConcurrentIfAbsent, nil},
		{"Stager", testStager, nil},
		{"FileObject", testFileObject, nil},
		{"Encoding", func(t *testing.T, b cas.Backend) { testEncoding(t, b, true) }, nil},
		{"EncodedCommitter", nil, testEncodedCommitter},
		{"Presigner", nil, testPresigner},
	}
	checked := []test{
		{"RoundTrip", testRoundTrip, nil},
		{"Empty", testEmpty, nil},
		{"IfAbsent", testIfAbsent, nil},
		{"FailingReader", testFailingReader, nil},
		{"Seek", testSeek, nil},
		{"NonCASKeys", testNonCASKeys, nil},
		{"DigestMismatch", testDigestMismatch, nil},
		{"BlobKeyDigest", testBlobKeyDigest, nil},
		{"SizeMismatch", testSizeMismatch, nil},
		{"CancelledPut", testCancelledPut, nil},
		{"CancelledContext", testCancelledContext, nil},
		{"InvalidKeys", testInvalidKeys, nil},
		{"HeldKeys", nil, testHeldKeys},
		{"Stager", testStager, nil},
		{"CheckedStager", testCheckedStager, nil},
		{"FileObject", testFileObject, nil},
		{"Presigner", nil, testPresigner},
		{"Store", testStore, nil},
		{"Encoding", func(t *testing.T, b cas.Backend) { testEncoding(t, b, false) }, nil},
		{"EncodedCommitter", nil, testEncodedCommitter},
	}
	for _, part := range []struct {
		name  string
		tests []test
		wrap  func(cas.Backend) cas.Backend
	}{
		{"Thin", thin, func(b cas.Backend) cas.Backend { return b }},
		{"Checked", checked, cas.Checked},
	} {
		t.Run(part.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range part.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					b := newBackend(t)
					if b == nil {
						t.Fatal("newBackend returned nil")
					}
					if tc.raw != nil {
						tc.raw(t, b, part.wrap(b))
						return
					}
					tc.fn(t, part.wrap(b))
				})
			}
		})
	}
}

// mustNoError stops the test when err is not nil. The format and args
// name the operation that failed.
func mustNoError(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", fmt.Sprintf(format, args...), err)
	}
}

// mustError stops the test when err is nil. The format and args name the
// operation that should have failed.
func mustError(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got nil error, want an error", fmt.Sprintf(format, args...))
	}
}

// mustErrorIs stops the test unless err wraps target.
func mustErrorIs(t *testing.T, err, target error, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %v", fmt.Sprintf(format, args...), err, target)
	}
}

// bytesDiff describes how got differs from want, or returns "" when they
// are equal. Short values are quoted; long ones are summarised by their
// lengths and the first differing offset.
func bytesDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	if len(got) <= 64 && len(want) <= 64 {
		return fmt.Sprintf("got %q, want %q", got, want)
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
}

// mustEqualBytes stops the test when got and want differ.
func mustEqualBytes(t *testing.T, got, want []byte, format string, args ...any) {
	t.Helper()
	if d := bytesDiff(got, want); d != "" {
		t.Fatalf("%s: %s", fmt.Sprintf(format, args...), d)
	}
}

// mustEqualKeys stops the test when the listed keys got differ from want,
// treating nil and empty alike.
func mustEqualKeys(t *testing.T, got, want []string, format string, args ...any) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s: keys differ (-want +got):\n%s", fmt.Sprintf(format, args...), diff)
	}
}

// mustPos stops the test when err is not nil or a Seek landed at pos
// instead of want.
func mustPos(t *testing.T, pos int64, err error, want int64, format string, args ...any) {
	t.Helper()
	op := fmt.Sprintf(format, args...)
	mustNoError(t, err, "%s", op)
	if pos != want {
		t.Fatalf("%s: got position %d, want %d", op, pos, want)
	}
}

// mustEOF stops the test unless a Read returned no bytes and io.EOF.
func mustEOF(t *testing.T, n int, err error, format string, args ...any) {
	t.Helper()
	op := fmt.Sprintf(format, args...)
	if n != 0 {
		t.Errorf("%s: read %d bytes, want 0", op, n)
	}
	mustErrorIs(t, err, io.EOF, "%s", op)
}

// data returns n deterministic pseudo-random bytes for seed.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, b cas.Backend, key string, p []byte, opts cas.PutOptions) {
	t.Helper()
	mustNoError(t, b.Put(t.Context(), key, bytes.NewReader(p), int64(len(p)), opts), "Put %q (%d bytes, IfAbsent %v)", key, len(p), opts.IfAbsent)
}

// readKey opens key and returns its bytes, checking Info against them.
func readKey(t *testing.T, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(t.Context(), key)
	mustNoError(t, err, "Open %q", key)
	defer func() {
		if err := obj.Close(); err != nil {
			t.Errorf("Close of %q: unexpected error: %v", key, err)
		}
	}()
	got, err := io.ReadAll(obj)
	mustNoError(t, err, "read %q", key)
	if k := obj.Info().Key; k != key {
		t.Fatalf("Open %q: Info().Key = %q, want %q", key, k, key)
	}
	if size := obj.Info().Size; size != int64(len(got)) {
		t.Fatalf("Open %q: Info().Size = %d, want %d (the bytes read)", key, size, len(got))
	}
	return got
}

func requireNotFound(t *testing.T, b cas.Backend, key string) {
	t.Helper()
	_, err := b.Stat(t.Context(), key)
	mustErrorIs(t, err, cas.ErrNotFound, "Stat %q", key)
	obj, err := b.Open(t.Context(), key)
	if err == nil {
		_ = obj.Close()
	}
	mustErrorIs(t, err, cas.ErrNotFound, "Open %q", key)
}

func listKeys(t *testing.T, b cas.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	for info, err := range b.List(t.Context(), prefix) {
		mustNoError(t, err, "List %q", prefix)
		keys = append(keys, info.Key)
	}
	return keys
}

// mustListNothing stops the test when List(prefix) yields any key.
func mustListNothing(t *testing.T, b cas.Backend, prefix, format string, args ...any) {
	t.Helper()
	if keys := listKeys(t, b, prefix); len(keys) != 0 {
		t.Fatalf("%s: List %q yielded %d keys, want none: %q", fmt.Sprintf(format, args...), prefix, len(keys), keys)
	}
}

// mustListCount stops the test unless List(prefix) yields n keys.
func mustListCount(t *testing.T, b cas.Backend, prefix string, n int, format string, args ...any) []string {
	t.Helper()
	keys := listKeys(t, b, prefix)
	if len(keys) != n {
		t.Fatalf("%s: List %q yielded %d keys, want %d", fmt.Sprintf(format, args...), prefix, len(keys), n)
	}
	return keys
}

func testMissing(t *testing.T, b cas.Backend) {
	for _, key := range []string{
		cas.SumBytes([]byte("missing")).Key(),
		"legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69",
		"thumbnails/missing_150.jpg",
	} {
		requireNotFound(t, b, key)
	}
	mustListNothing(t, b, "", "a new Backend")
}

func testRoundTrip(t *testing.T, b cas.Backend) {
	p := data(1, 10_000)
	h := cas.SumBytes(p)
	before := time.Now()
	put(t, b, h.Key(), p, cas.PutOptions{SHA256: h, IfAbsent: true, ContentType: "application/octet-stream"})
	after := time.Now()

	info, err := b.Stat(t.Context(), h.Key())
	mustNoError(t, err, "Stat %q", h.Key())
	if info.Key != h.Key() {
		t.Errorf("Stat %q: Key = %q, want %q", h.Key(), info.Key, h.Key())
	}
	if info.Size != int64(len(p)) {
		t.Errorf("Stat %q: Size = %d, want %d", h.Key(), info.Size, len(p))
	}
	// Allow for clocks and timestamps of one-second resolution.
	lo, hi := before.Add(-5*time.Second), after.Add(5*time.Second)
	if info.ModTime.IsZero() {
		t.Errorf("Stat %q: ModTime is zero", h.Key())
	} else if info.ModTime.Before(lo) || info.ModTime.After(hi) {
		t.Errorf("Stat %q: ModTime = %v, want within [%v, %v]", h.Key(), info.ModTime, lo, hi)
	}

	obj, err := b.Open(t.Context(), h.Key())
	mustNoError(t, err, "Open %q", h.Key())
	defer obj.Close()
	oi := obj.Info()
	if oi.Key != info.Key {
		t.Errorf("Open %q: Info().Key = %q, Stat says %q", h.Key(), oi.Key, info.Key)
	}
	if oi.Size != info.Size {
		t.Errorf("Open %q: Info().Size = %d, Stat says %d", h.Key(), oi.Size, info.Size)
	}
	if d := oi.ModTime.Sub(info.ModTime).Abs(); d > time.Second {
		t.Errorf("Open %q: Info().ModTime = %v, Stat says %v: %v apart, want at most 1s", h.Key(), oi.ModTime, info.ModTime, d)
	}
	got, err := io.ReadAll(obj)
	mustNoError(t, err, "read %q", h.Key())
	mustEqualBytes(t, got, p, "bytes read back from %q", h.Key())
}

func testEmpty(t *testing.T, b cas.Backend) {
	h := cas.SumBytes(nil)
	put(t, b, h.Key(), nil, cas.PutOptions{SHA256: h, IfAbsent: true})
	info, err := b.Stat(t.Context(), h.Key())
	mustNoError(t, err, "Stat %q", h.Key())
	if info.Size != 0 {
		t.Errorf("Stat %q of the empty blob: Size = %d, want 0", h.Key(), info.Size)
	}
	obj, err := b.Open(t.Context(), h.Key())
	mustNoError(t, err, "Open %q", h.Key())
	defer obj.Close()
	n, err := obj.Read(make([]byte, 8))
	mustEOF(t, n, err, "Read of the empty blob %q", h.Key())
}

func testDelete(t *testing.T, b cas.Backend) {
	ctx := t.Context()
	mustNoError(t, b.Delete(ctx, "legacy/never-stored"), "Delete of a missing key must return nil")
	p := []byte("delete me")
	put(t, b, "legacy/del", p, cas.PutOptions{})
	put(t, b, "legacy/keep", p, cas.PutOptions{})
	mustNoError(t, b.Delete(ctx, "legacy/del"), "Delete %q", "legacy/del")
	requireNotFound(t, b, "legacy/del")
	mustNoError(t, b.Delete(ctx, "legacy/del"), "second Delete of %q must return nil", "legacy/del")
	mustEqualKeys(t, listKeys(t, b, ""), []string{"legacy/keep"}, "List after Delete")
	mustEqualBytes(t, readKey(t, b, "legacy/keep"), p, "bytes of %q after deleting another key", "legacy/keep")
	// A deleted key can be written again, create-only.
	put(t, b, "legacy/del", []byte("again"), cas.PutOptions{IfAbsent: true})
	mustEqualBytes(t, readKey(t, b, "legacy/del"), []byte("again"), "bytes of %q written again after Delete", "legacy/del")
}

func testIfAbsent(t *testing.T, b cas.Backend) {
	orig := data(2, 3000)
	h := cas.SumBytes(orig)
	put(t, b, h.Key(), orig, cas.PutOptions{SHA256: h, IfAbsent: true})
	for _, key := range []string{h.Key(), "legacy/ifabsent"} {
		if key != h.Key() {
			put(t, b, key, orig, cas.PutOptions{IfAbsent: true})
		}
		other := data(3, 500)
		err := b.Put(t.Context(), key, bytes.NewReader(other), int64(len(other)), cas.PutOptions{IfAbsent: true})
		if key == h.Key() && cas.Checked(b) == b && errors.Is(err, cas.ErrDigestMismatch) {
			// Through the checked layer, other bytes under a blob key may
			// fail their digest before the Backend finds the key.
		} else {
			mustErrorIs(t, err, cas.ErrExists, "IfAbsent Put over existing %q", key)
		}
		mustEqualBytes(t, readKey(t, b, key), orig, "bytes of %q after a refused IfAbsent Put", key)
		info, err := b.Stat(t.Context(), key)
		mustNoError(t, err, "Stat %q", key)
		if info.Size != int64(len(orig)) {
			t.Fatalf("Stat %q after a refused IfAbsent Put: Size = %d, want %d", key, info.Size, len(orig))
		}
	}
}

func testReplace(t *testing.T, b cas.Backend) {
	put(t, b, "legacy/replace", []byte("first version"), cas.PutOptions{})
	put(t, b, "legacy/replace", []byte("second"), cas.PutOptions{})
	mustEqualBytes(t, readKey(t, b, "legacy/replace"), []byte("second"), "Put without IfAbsent must replace %q", "legacy/replace")
	mustEqualKeys(t, listKeys(t, b, "legacy/"), []string{"legacy/replace"}, "List %q after a replacement", "legacy/")
}

func testDigestMismatch(t *testing.T, b cas.Backend) {
	p := data(4, 2048)
	wrong := cas.SumBytes([]byte("something else"))
	for _, opts := range []cas.PutOptions{{SHA256: wrong}, {SHA256: wrong, IfAbsent: true}} {
		for _, key := range []string{wrong.Key(), cas.SumBytes(p).Key(), "legacy/digest"} {
			err := b.Put(t.Context(), key, bytes.NewReader(p), int64(len(p)), opts)
			mustErrorIs(t, err, cas.ErrDigestMismatch, "Put %q with a wrong SHA256 (IfAbsent %v)", key, opts.IfAbsent)
			requireNotFound(t, b, key)
		}
	}
	mustListNothing(t, b, "", "after Puts with a wrong SHA256")

	// A mismatch does not disturb an existing object either.
	put(t, b, "legacy/digest", p, cas.PutOptions{})
	other := data(5, 100)
	err := b.Put(t.Context(), "legacy/digest", bytes.NewReader(other), int64(len(other)), cas.PutOptions{SHA256: wrong})
	mustErrorIs(t, err, cas.ErrDigestMismatch, "Put over existing %q with a wrong SHA256", "legacy/digest")
	mustEqualBytes(t, readKey(t, b, "legacy/digest"), p, "bytes of %q after a replacement with a wrong SHA256", "legacy/digest")
}

// failingReader yields the bytes of r and then fails with err instead of
// io.EOF.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errInjected = errors.New("castest: injected read failure")

func testFailingReader(t *testing.T, b cas.Backend) {
	p := data(6, 64<<10)
	for _, opts := range []cas.PutOptions{{}, {IfAbsent: true}} {
		r := &failingReader{r: bytes.NewReader(p[:20<<10]), err: errInjected}
		err := b.Put(t.Context(), "legacy/fail", r, int64(len(p)), opts)
		mustError(t, err, "Put %q from a reader that fails midway (IfAbsent %v)", "legacy/fail", opts.IfAbsent)
		requireNotFound(t, b, "legacy/fail")
	}
	mustListNothing(t, b, "", "after Puts from failing readers")

	// A failed replacement leaves the existing object intact.
	put(t, b, "legacy/fail", []byte("intact"), cas.PutOptions{})
	r := &failingReader{r: bytes.NewReader(p[:1000]), err: errInjected}
	mustError(t, b.Put(t.Context(), "legacy/fail", r, int64(len(p)), cas.PutOptions{}),
		"Put over existing %q from a reader that fails midway", "legacy/fail")
	mustEqualBytes(t, readKey(t, b, "legacy/fail"), []byte("intact"), "bytes of %q after a failed replacement", "legacy/fail")
}

func testSizeMismatch(t *testing.T, b cas.Backend) {
	p := data(7, 4096)
	for _, size := range []int64{int64(len(p)) + 1, int64(len(p)) + 10_000, int64(len(p)) - 1, 0} {
		err := b.Put(t.Context(), "legacy/size", bytes.NewReader(p), size, cas.PutOptions{})
		mustError(t, err, "Put %q of %d bytes declared as %d", "legacy/size", len(p), size)
		requireNotFound(t, b, "legacy/size")
		if size > int64(len(p)) {
			mustErrorIs(t, err, io.ErrUnexpectedEOF, "Put %q of %d bytes declared as %d", "legacy/size", len(p), size)
		}
	}
	err := b.Put(t.Context(), "legacy/size", bytes.NewReader(p), -1, cas.PutOptions{})
	mustError(t, err, "Put %q with a negative size", "legacy/size")
	requireNotFound(t, b, "legacy/size")
	// A short reader: a size larger than the bytes fails with io.ErrUnexpectedEOF.
	err = b.Put(t.Context(), "legacy/size", bytes.NewReader(p[:100]), int64(len(p)), cas.PutOptions{})
	mustErrorIs(t, err, io.ErrUnexpectedEOF, "Put %q of 100 bytes declared as %d", "legacy/size", len(p))
	requireNotFound(t, b, "legacy/size")
	mustListNothing(t, b, "", "after Puts with a wrong size")
}

func testCancelledPut(t *testing.T, b cas.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := data(8, 1000)
	h := cas.SumBytes(p)
	err := b.Put(ctx, h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: h, IfAbsent: true})
	mustError(t, err, "Put %q with a cancelled context", h.Key())
	requireNotFound(t, b, h.Key())

	// Cancelled while the body is being read.
	ctx, cancel = context.WithCancel(t.Context())
	r := &cancelReader{r: bytes.NewReader(data(9, 256<<10)), after: 64 << 10, cancel: cancel}
	err = b.Put(ctx, "legacy/cancel", r, 256<<10, cas.PutOptions{})
	mustError(t, err, "Put %q cancelled midway", "legacy/cancel")
	requireNotFound(t, b, "legacy/cancel")
	mustListNothing(t, b, "", "after cancelled Puts")
}

// testBlobKeyDigest: a Put under a blob key cas/<hex> is verified against
// <hex>, with or without PutOptions.SHA256, and a SHA256 that is not the
// key's fails before anything is stored.
func testBlobKeyDigest(t *testing.T, b cas.Backend) {
	p := data(11, 3000)
	h := cas.SumBytes(p)
	other := data(12, 3000)
	for _, opts := range []cas.PutOptions{{}, {IfAbsent: true}} {
		err := b.Put(t.Context(), h.Key(), bytes.NewReader(other), int64(len(other)), opts)
		mustErrorIs(t, err, cas.ErrDigestMismatch, "Put %q of other bytes without SHA256 (IfAbsent %v)", h.Key(), opts.IfAbsent)
		requireNotFound(t, b, h.Key())
		opts.SHA256 = cas.SumBytes(other)
		err = b.Put(t.Context(), h.Key(), bytes.NewReader(other), int64(len(other)), opts)
		mustErrorIs(t, err, cas.ErrDigestMismatch, "Put %q with the SHA256 of other bytes (IfAbsent %v)", h.Key(), opts.IfAbsent)
		requireNotFound(t, b, h.Key())
	}
	// Without SHA256, the key's own digest is checked and the bytes stored.
	put(t, b, h.Key(), p, cas.PutOptions{IfAbsent: true})
	mustEqualBytes(t, readKey(t, b, h.Key()), p, "bytes of %q stored without SHA256", h.Key())
	mustListCount(t, b, "", 1, "after Puts under a blob key")
}

// writeRefusedKeys are keys that cas.CheckKey refuses but that a Backend
// may hold: written before casa, they must stay readable and deletable.
func writeRefusedKeys(h cas.Hash) []string {
	return []string{
		"/abs", "trailing/", "a//b", "a/../b", "./a", "..", ".tmp/x", ".hidden",
		"back\\slash", "nul\x00", "ctl\x01", "cas/notahash", "CAS/" + h.String(), "cas/" + strings.ToUpper(h.String()),
		"a/" + strings.Repeat("s", cas.MaxSegmentLen+1),
	}
}

// testInvalidKeys: every write with a key that cas.CheckKey refuses fails
// with ErrInvalidKey and stores nothing, and a Put under a derived prefix
// must be a cas.DerivedKey. Reads and Deletes refuse only keys that no
// Backend can hold (empty, longer than cas.MaxKeyLen, invalid UTF-8); other
// keys are not found, or refused by a Backend that cannot address them.
func testInvalidKeys(t *testing.T, b cas.Backend) {
	ctx := t.Context()
	h := cas.SumBytes([]byte("blob"))
	never := []string{"", "\xff\xfe", "a/\xc0", strings.Repeat("k", cas.MaxKeyLen+1)}
	for _, key := range never {
		_, err := b.Stat(ctx, key)
		mustErrorIs(t, err, cas.ErrInvalidKey, "Stat %q", key)
		obj, err := b.Open(ctx, key)
		if err == nil {
			_ = obj.Close()
		}
		mustErrorIs(t, err, cas.ErrInvalidKey, "Open %q", key)
		mustErrorIs(t, b.Delete(ctx, key), cas.ErrInvalidKey, "Delete %q", key)
	}
	for _, key := range append(never, writeRefusedKeys(h)...) {
		for _, opts := range []cas.PutOptions{{}, {IfAbsent: true}} {
			err := b.Put(ctx, key, strings.NewReader("x"), 1, opts)
			mustErrorIs(t, err, cas.ErrInvalidKey, "Put %q (IfAbsent %v)", key, opts.IfAbsent)
		}
	}
	for _, key := range writeRefusedKeys(h) {
		_, err := b.Stat(ctx, key)
		if !errors.Is(err, cas.ErrNotFound) && !errors.Is(err, cas.ErrInvalidKey) {
			t.Fatalf("Stat %q of a key never written: %v, want an error wrapping cas.ErrNotFound (or cas.ErrInvalidKey from a Backend that cannot address it)", key, err)
		}
		obj, err := b.Open(ctx, key)
		if err == nil {
			_ = obj.Close()
		}
		if !errors.Is(err, cas.ErrNotFound) && !errors.Is(err, cas.ErrInvalidKey) {
			t.Fatalf("Open %q of a key never written: %v, want an error wrapping cas.ErrNotFound (or cas.ErrInvalidKey from a Backend that cannot address it)", key, err)
		}
		if err := b.Delete(ctx, key); err != nil && !errors.Is(err, cas.ErrInvalidKey) {
			t.Fatalf("Delete %q of a key never written: %v, want nil (or cas.ErrInvalidKey from a Backend that cannot address it)", key, err)
		}
	}
	for _, key := range []string{cas.ThumbnailPrefix + "loose.jpg", cas.ThumbnailPrefix + h.String(), cas.ThumbnailPrefix + h.String() + "_"} {
		err := b.Put(ctx, key, strings.NewReader("x"), 1, cas.PutOptions{})
		mustErrorIs(t, err, cas.ErrInvalidKey, "Put %q under a derived prefix", key)
	}
	mustListNothing(t, b, "", "after Puts with invalid keys")
	good := cas.DerivedKey(cas.ThumbnailPrefix, h, "150.jpg")
	put(t, b, good, []byte("jpeg"), cas.PutOptions{})
	mustEqualBytes(t, readKey(t, b, good), []byte("jpeg"), "bytes of %q", good)
}

// legacyKeys are keys found in real buckets written before casa, which
// cas.CheckKey refuses for a write.
func legacyKeys() []string {
	return []string{
		"/uploads/a.pdf", "uploads//b.pdf", `C:\scans\c.pdf`, ".well-known/x", "Cas/readme.txt",
		"uploads/" + strings.Repeat("n", cas.MaxSegmentLen+1) + ".pdf",
	}
}

// testHeldKeys: any key the Backend holds can be read, listed and deleted
// through cas.Checked, though CheckKey refuses to write it. Each key is
// written to the Backend directly; keys the Backend itself refuses (fsstore
// refuses all of these, for path safety) are skipped.
func testHeldKeys(t *testing.T, raw, b cas.Backend) {
	ctx := t.Context()
	for i, key := range legacyKeys() {
		p := data(uint64(200+i), 100+i)
		if err := raw.Put(ctx, key, bytes.NewReader(p), int64(len(p)), cas.PutOptions{}); err != nil {
			if !errors.Is(err, cas.ErrInvalidKey) {
				t.Fatalf("Put %q to the Backend directly: %v, want success or an error wrapping cas.ErrInvalidKey", key, err)
			}
			t.Logf("the Backend cannot hold %q: %v", key, err)
			continue
		}
		info, err := b.Stat(ctx, key)
		mustNoError(t, err, "Stat of held key %q", key)
		if info.Size != int64(len(p)) {
			t.Fatalf("Stat of held key %q: Size %d, want %d", key, info.Size, len(p))
		}
		mustEqualBytes(t, readKey(t, b, key), p, "bytes of held key %q", key)
		if keys := listKeys(t, b, ""); !slices.Contains(keys, key) {
			// A service may store a key in a normal form (SeaweedFS
			// turns backslashes into slashes and drops a leading slash
			// and empty segments); the key it was given must still read,
			// and List must yield that form.
			norm := path.Clean(strings.TrimLeft(strings.ReplaceAll(key, `\`, "/"), "/"))
			if norm == key || !slices.Contains(keys, norm) {
				t.Fatalf("List does not yield held key %q: %q", key, keys)
			}
			t.Logf("the Backend lists held key %q in its normal form %q", key, norm)
		}
		mustErrorIs(t, b.Put(ctx, key, bytes.NewReader(p), int64(len(p)), cas.PutOptions{}), cas.ErrInvalidKey, "Put of held key %q", key)
		mustNoError(t, b.Delete(ctx, key), "Delete of held key %q", key)
		requireNotFound(t, b, key)
	}
	mustListNothing(t, b, "", "after deleting every held key")
}

func testCancelledContext(t *testing.T, b cas.Backend) {
	put(t, b, "legacy/ctx", []byte("ctx"), cas.PutOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.Stat(ctx, "legacy/ctx")
	mustErrorIs(t, err, context.Canceled, "Stat %q with a cancelled context", "legacy/ctx")
	obj, err := b.Open(ctx, "legacy/ctx")
	if err == nil {
		_ = obj.Close()
	}
	mustErrorIs(t, err, context.Canceled, "Open %q with a cancelled context", "legacy/ctx")
	mustErrorIs(t, b.Delete(ctx, "legacy/ctx"), context.Canceled, "Delete %q with a cancelled context", "legacy/ctx")
	n := 0
	for _, err := range b.List(ctx, "") {
		n++
		mustErrorIs(t, err, context.Canceled, "List with a cancelled context, item %d", n)
	}
	if n != 1 {
		t.Fatalf("List with a cancelled context yielded %d items, want exactly one error", n)
	}
	mustEqualBytes(t, readKey(t, b, "legacy/ctx"), []byte("ctx"), "a cancelled Delete must delete nothing: bytes of %q", "legacy/ctx")

	// Reads of an open Object fail once the context of its Open is done.
	octx, ocancel := context.WithCancel(t.Context())
	obj, err = b.Open(octx, "legacy/ctx")
	mustNoError(t, err, "Open %q", "legacy/ctx")
	defer obj.Close()
	one := make([]byte, 1)
	_, err = obj.Read(one)
	mustNoError(t, err, "Read of %q before cancelling", "legacy/ctx")
	ocancel()
	_, err = obj.Read(one)
	mustErrorIs(t, err, context.Canceled, "Read of %q after its Open's context was cancelled", "legacy/ctx")
}

// cancelReader cancels its context once after bytes have been read.
type cancelReader struct {
	r      io.Reader
	n      int
	after  int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func testSeek(t *testing.T, b cas.Backend) {
	const size = 100_000
	p := data(10, size)
	put(t, b, "legacy/seek", p, cas.PutOptions{})
	obj, err := b.Open(t.Context(), "legacy/seek")
	mustNoError(t, err, "Open %q", "legacy/seek")
	defer obj.Close()
	if got := obj.Info().Size; got != size {
		t.Fatalf("Open %q: Info().Size = %d, want %d", "legacy/seek", got, size)
	}

	readAt := func(off int64, n int) {
		t.Helper()
		buf := make([]byte, n)
		_, err := io.ReadFull(obj, buf)
		mustNoError(t, err, "read %d bytes at %d", n, off)
		mustEqualBytes(t, buf, p[off:off+int64(n)], "bytes at %d..%d", off, off+int64(n))
	}
	for _, off := range []int64{0, 1, 4095, 4096, 50_000, size - 100} {
		pos, err := obj.Seek(off, io.SeekStart)
		mustPos(t, pos, err, off, "Seek(%d, SeekStart)", off)
		readAt(off, 100)
	}

	pos, err := obj.Seek(1000, io.SeekStart)
	mustPos(t, pos, err, 1000, "Seek(1000, SeekStart)")
	readAt(1000, 10)
	pos, err = obj.Seek(500, io.SeekCurrent)
	mustPos(t, pos, err, 1510, "Seek(500, SeekCurrent) after reading to 1010")
	readAt(1510, 20)
	pos, err = obj.Seek(-30, io.SeekCurrent)
	mustPos(t, pos, err, 1500, "Seek(-30, SeekCurrent) after reading to 1530")
	readAt(1500, 30)
	pos, err = obj.Seek(0, io.SeekCurrent)
	mustPos(t, pos, err, 1530, "Seek(0, SeekCurrent) must report the position")

	pos, err = obj.Seek(-10, io.SeekEnd)
	mustPos(t, pos, err, size-10, "Seek(-10, SeekEnd)")
	rest, err := io.ReadAll(obj)
	mustNoError(t, err, "read after Seek(-10, SeekEnd)")
	mustEqualBytes(t, rest, p[size-10:], "tail after Seek(-10, SeekEnd)")
	n, err := obj.Read(make([]byte, 10))
	mustEOF(t, n, err, "Read at the end")

	pos, err = obj.Seek(0, io.SeekEnd)
	mustPos(t, pos, err, size, "Seek(0, SeekEnd)")
	n, err = obj.Read(make([]byte, 10))
	mustEOF(t, n, err, "Read after Seek(0, SeekEnd)")

	pos, err = obj.Seek(size+1000, io.SeekStart)
	mustPos(t, pos, err, size+1000, "Seek past the end is allowed, as with io.Seeker: Seek(%d, SeekStart)", size+1000)
	n, err = obj.Read(make([]byte, 10))
	mustEOF(t, n, err, "Read past the end")

	_, err = obj.Seek(-1, io.SeekStart)
	mustError(t, err, "Seek(-1, SeekStart) to a negative offset")

	// Back to the start: the whole object reads again.
	pos, err = obj.Seek(0, io.SeekStart)
	mustPos(t, pos, err, 0, "Seek(0, SeekStart) back to the start")
	all, err := io.ReadAll(obj)
	mustNoError(t, err, "read the whole object after seeking back")
	mustEqualBytes(t, all, p, "whole object after seeking back")
}

func testList(t *testing.T, b cas.Backend) {
	h1 := cas.SumBytes([]byte("one"))
	h2 := cas.SumBytes([]byte("two"))
	h3 := cas.SumBytes([]byte("three"))
	contents := map[string][]byte{
		h1.Key():                                 []byte("one"),
		h2.Key():                                 []byte("two"),
		h3.Key():                                 []byte("three"),
		"legacy/a":                               []byte("a"),
		"legacy/b/c":                             []byte("bc"),
		"legacy/b-":                              []byte("b-"),
		"legacy/b":                               nil,
		"legacy-x":                               []byte("dash sorts before slash"),
		"legacy.y":                               []byte("dot sorts before slash"),
		"legacy/z/deep/er/key.bin":               []byte("deep"),
		"thumbnails/" + h1.String() + "_150.jpg": []byte("jpeg"),
		"a":                                      []byte("top-level"),
	}
	// "legacy/b" as a file and "legacy/b/c" as a directory entry collide on
	// a file system; keep the suite portable to such Backends.
	delete(contents, "legacy/b")
	var all []string
	for k, v := range contents {
		put(t, b, k, v, cas.PutOptions{})
		all = append(all, k)
	}
	slices.Sort(all)

	for _, prefix := range []string{
		"", "a", "cas/", "cas", "cas/" + h1.String()[:1], h2.Key(), h2.Key() + "x",
		"legacy", "legacy/", "legacy/b", "legacy/b/", "legacy/b-", "legacy/z/d",
		"legacy-", "thumbnails/", "thumbnails/" + h1.String(), "nomatch", "nomatch/", "legacy/q",
	} {
		var want []string
		for _, k := range all {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		var got []string
		for info, err := range b.List(t.Context(), prefix) {
			mustNoError(t, err, "List %q", prefix)
			got = append(got, info.Key)
			if want := int64(len(contents[info.Key])); info.Size != want {
				t.Errorf("List %q: Size of %q = %d, want %d", prefix, info.Key, info.Size, want)
			}
			if info.ModTime.IsZero() {
				t.Errorf("List %q: ModTime of %q is zero", prefix, info.Key)
			}
		}
		mustEqualKeys(t, got, want, "List %q must yield the keys with the prefix, in lexical order", prefix)

		// cas.ListKeys: the Backend's KeyLister when it has one, else List.
		got = nil
		for ki, err := range cas.ListKeys(t.Context(), b, prefix) {
			mustNoError(t, err, "ListKeys %q", prefix)
			got = append(got, ki.Key)
			if want := int64(len(contents[ki.Key])); ki.StoredSize != want {
				t.Errorf("ListKeys %q: StoredSize of %q = %d, want %d", prefix, ki.Key, ki.StoredSize, want)
			}
			if ki.ModTime.IsZero() {
				t.Errorf("ListKeys %q: ModTime of %q is zero", prefix, ki.Key)
			}
		}
		mustEqualKeys(t, got, want, "ListKeys %q must yield List's keys, in lexical order", prefix)
	}
	for ki, err := range cas.ListKeys(t.Context(), b, "") {
		mustNoError(t, err, "ListKeys")
		if ki.Key != all[0] {
			t.Errorf("ListKeys: first key %q, want %q", ki.Key, all[0])
		}
		break // must stop: a yield after break panics
	}
}

func testListBreak(t *testing.T, b cas.Backend) {
	for i := range 5 {
		put(t, b, fmt.Sprintf("brk/%d", i), []byte{byte(i)}, cas.PutOptions{})
	}
	var got []string
	for info, err := range b.List(t.Context(), "brk/") {
		mustNoError(t, err, "List %q", "brk/")
		got = append(got, info.Key)
		if len(got) == 2 {
			break
		}
	}
	mustEqualKeys(t, got, []string{"brk/0", "brk/1"}, "List %q must stop at break", "brk/")
	mustListCount(t, b, "brk/", 5, "a new List after a break")
}

func testListMany(t *testing.T, b cas.Backend) {
	const n = 1100 // more than one S3 ListObjectsV2 page
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%05d", i)
	}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first = make(chan error, 1)
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				err := b.Put(t.Context(), keys[i], strings.NewReader("x"), 1, cas.PutOptions{})
				if err != nil {
					select {
					case first <- fmt.Errorf("put %q: %w", keys[i], err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(first)
	mustNoError(t, <-first, "concurrent Puts of %d keys", n)
	put(t, b, "manz", []byte("after"), cas.PutOptions{})
	put(t, b, "man", []byte("before"), cas.PutOptions{})

	mustEqualKeys(t, listKeys(t, b, "many/"), keys, "List %q must yield all keys, in order, across pages", "many/")
	all := mustListCount(t, b, "", n+2, "all keys across pages")
	if all[0] != "man" || all[n+1] != "manz" {
		t.Fatalf("List %q: first key %q and last key %q, want %q and %q", "", all[0], all[n+1], "man", "manz")
	}

	// Break after the first page.
	count := 0
	for _, err := range b.List(t.Context(), "many/") {
		mustNoError(t, err, "List %q, item %d", "many/", count+1)
		count++
		if count == 1050 {
			break
		}
	}
	if count != 1050 {
		t.Fatalf("List %q with a break at item 1050 yielded %d items", "many/", count)
	}
}

func testNonCASKeys(t *testing.T, b cas.Backend) {
	h := cas.SumBytes([]byte("photo"))
	keys := []string{
		"legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69",
		"legacy/2024/05/report.pdf",
		"thumbnails/" + h.String() + "_150.jpg",
		"thumbnails/" + h.String() + "_1000.jpg",
		"uploads/with space & ünïcode.txt",
	}
	for i, k := range keys {
		put(t, b, k, data(uint64(100+i), 100+i), cas.PutOptions{ContentType: "application/octet-stream"})
	}
	for i, k := range keys {
		mustEqualBytes(t, readKey(t, b, k), data(uint64(100+i), 100+i), "bytes of %q", k)
		info, err := b.Stat(t.Context(), k)
		mustNoError(t, err, "Stat %q", k)
		if info.Key != k {
			t.Errorf("Stat %q: Key = %q, want %q", k, info.Key, k)
		}
		if info.Size != int64(100+i) {
			t.Errorf("Stat %q: Size = %d, want %d", k, info.Size, 100+i)
		}
	}
	mustEqualKeys(t, listKeys(t, b, "thumbnails/"), []string{keys[3], keys[2]}, "List %q", "thumbnails/")
	mustListNothing(t, b, "cas/", "non-CAS keys must not be listed under cas/")
	for _, k := range keys {
		mustNoError(t, b.Delete(t.Context(), k), "Delete %q", k)
		requireNotFound(t, b, k)
	}
}

func testConcurrent(t *testing.T, b cas.Backend) {
	const workers, perWorker = 8, 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	report := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			ctx := t.Context()
			for i := range perWorker {
				key := fmt.Sprintf("conc/%d/%d", w, i)
				p := data(uint64(w*1000+i), 512+i)
				if err := b.Put(ctx, key, bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true}); err != nil {
					report(fmt.Errorf("put %q: %w", key, err))
					continue
				}
				if info, err := b.Stat(ctx, key); err != nil || info.Size != int64(len(p)) {
					report(fmt.Errorf("stat %q: %+v, %v (want Size %d)", key, info, err, len(p)))
				}
				obj, err := b.Open(ctx, key)
				if err != nil {
					report(fmt.Errorf("open %q: %w", key, err))
					continue
				}
				got, err := io.ReadAll(obj)
				_ = obj.Close()
				if err != nil || !bytes.Equal(got, p) {
					report(fmt.Errorf("read %q: %d bytes, %v (want %d bytes as written)", key, len(got), err, len(p)))
				}
				prev := ""
				for info, err := range b.List(ctx, "conc/") {
					if err != nil {
						report(fmt.Errorf("list: %w", err))
						break
					}
					if info.Key <= prev {
						report(fmt.Errorf("list order: %q after %q", info.Key, prev))
						break
					}
					prev = info.Key
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		const show = 20
		msg := errors.Join(errs[:min(len(errs), show)]...).Error()
		if len(errs) > show {
			msg += fmt.Sprintf("\n... and %d more", len(errs)-show)
		}
		t.Fatalf("%d failures in concurrent use:\n%s", len(errs), msg)
	}
	mustListCount(t, b, "conc/", workers*perWorker, "after concurrent Puts")
}

func testConcurrentIfAbsent(t *testing.T, b cas.Backend) {
	const writers = 12
	type result struct {
		i   int
		err error
	}
	results := make(chan result, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			p := data(uint64(500+i), 8<<10)
			<-start
			results <- result{i, b.Put(t.Context(), "race/key", bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true})}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	winner := -1
	for r := range results {
		if r.err == nil {
			if winner != -1 {
				t.Fatalf("two IfAbsent Puts of one key succeeded: writers %d and %d", winner, r.i)
			}
			winner = r.i
			continue
		}
		mustErrorIs(t, r.err, cas.ErrExists, "IfAbsent Put of losing writer %d", r.i)
	}
	if winner == -1 {
		t.Fatalf("none of %d concurrent IfAbsent Puts of one key succeeded", writers)
	}
	mustEqualBytes(t, readKey(t, b, "race/key"), data(uint64(500+winner), 8<<10), "stored bytes must be the winner's (writer %d)", winner)
}

func testStore(t *testing.T, b cas.Backend) {
	ctx := t.Context()
	if got := cas.Checked(b); got != b {
		t.Fatalf("cas.Checked of a checked Backend must return it unchanged, got a new %T", got)
	}
	s := cas.New(b, cas.WithTempDir(t.TempDir()), cas.WithSpoolThreshold(64<<10))
	for _, size := range []int{0, 1000, 64 << 10, 300 << 10} {
		p := data(uint64(size)+7, size)
		want := cas.SumBytes(p)
		res, err := s.Put(ctx, bytes.NewReader(p))
		mustNoError(t, err, "Store.Put of %d bytes", size)
		if diff := cmp.Diff(cas.PutResult{Hash: want, Size: int64(size)}, res); diff != "" {
			t.Fatalf("Store.Put of %d bytes: result differs (-want +got):\n%s", size, diff)
		}
		res, err = s.Put(ctx, bytes.NewReader(p))
		mustNoError(t, err, "second Store.Put of %d bytes", size)
		if diff := cmp.Diff(cas.PutResult{Hash: want, Size: int64(size), Deduplicated: true}, res); diff != "" {
			t.Fatalf("second Store.Put of %d bytes must deduplicate: result differs (-want +got):\n%s", size, diff)
		}
		mustEqualBytes(t, readKey(t, b, want.Key()), p, "Store.Put must store the bytes under %q", want.Key())
		obj, err := s.Open(ctx, want)
		mustNoError(t, err, "Store.Open %s", want)
		got, err := io.ReadAll(obj)
		mustNoError(t, obj.Close(), "Close of Store.Open %s", want)
		mustNoError(t, err, "read Store.Open %s", want)
		mustEqualBytes(t, got, p, "bytes read through Store.Open %s", want)
		mustNoError(t, s.Verify(ctx, want), "Store.Verify %s", want)
	}

	p := data(42, 100<<10)
	wrong := cas.SumBytes([]byte("not these bytes"))
	_, err := s.PutVerified(ctx, wrong, bytes.NewReader(p))
	mustErrorIs(t, err, cas.ErrDigestMismatch, "Store.PutVerified with a wrong hash")
	ok, err := s.Has(ctx, cas.SumBytes(p))
	mustNoError(t, err, "Store.Has %s", cas.SumBytes(p))
	if ok {
		t.Fatalf("a mismatched PutVerified must store nothing, but Store.Has(%s) of its bytes is true", cas.SumBytes(p))
	}
	ok, err = s.Has(ctx, wrong)
	mustNoError(t, err, "Store.Has %s", wrong)
	if ok {
		t.Fatalf("a mismatched PutVerified must store nothing, but Store.Has(%s) of the claimed hash is true", wrong)
	}

	put(t, b, "legacy/not-a-blob", []byte("legacy"), cas.PutOptions{})
	var walked []string
	for info, err := range s.Walk(ctx) {
		mustNoError(t, err, "Store.Walk")
		walked = append(walked, info.Key)
	}
	if len(walked) != 4 {
		t.Fatalf("Store.Walk yielded %d keys %q, want the four blobs and no legacy keys", len(walked), walked)
	}
	if !slices.IsSorted(walked) {
		t.Fatalf("Store.Walk yielded keys out of order: %q", walked)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Put(cctx, bytes.NewReader(data(43, 200<<10)))
	mustErrorIs(t, err, context.Canceled, "Store.Put with a cancelled context")
	ok, err = s.Has(ctx, cas.SumBytes(data(43, 200<<10)))
	mustNoError(t, err, "Store.Has of the cancelled Put's bytes")
	if ok {
		t.Fatal("a cancelled Store.Put must store nothing, but Store.Has of its bytes is true")
	}
	mustListCount(t, b, "", 5, "the four blobs and one legacy key")
}

func testStager(t *testing.T, b cas.Backend) {
	st, ok := b.(cas.Stager)
	if !ok {
		t.Skipf("%T does not implement cas.Stager", b)
	}
	ctx := t.Context()
	p := data(60, 200<<10)
	h := cas.SumBytes(p)

	obj, err := st.Stage(ctx)
	mustNoError(t, err, "Stage")
	for chunk := range slices.Chunk(p, 7000) {
		n, err := obj.Write(chunk)
		mustNoError(t, err, "Write of %d staged bytes", len(chunk))
		if n != len(chunk) {
			t.Fatalf("Write of %d staged bytes wrote %d", len(chunk), n)
		}
	}
	requireNotFound(t, b, h.Key())
	mustListNothing(t, b, "", "staged bytes must not be listed before Commit")
	mustNoError(t, obj.Commit(ctx, h.Key()), "Commit %q", h.Key())
	mustEqualBytes(t, readKey(t, b, h.Key()), p, "bytes of committed %q", h.Key())

	// Commit over an existing key: ErrExists, original intact.
	obj, err = st.Stage(ctx)
	mustNoError(t, err, "Stage")
	_, err = obj.Write(p)
	mustNoError(t, err, "Write of staged bytes")
	mustErrorIs(t, obj.Commit(ctx, h.Key()), cas.ErrExists, "Commit over existing %q", h.Key())
	mustEqualBytes(t, readKey(t, b, h.Key()), p, "bytes of %q after a refused Commit", h.Key())

	// Abort discards.
	obj, err = st.Stage(ctx)
	mustNoError(t, err, "Stage")
	_, err = obj.Write([]byte("aborted"))
	mustNoError(t, err, "Write of staged bytes")
	mustNoError(t, obj.Abort(), "Abort")
	requireNotFound(t, b, "legacy/aborted")

	// Commit with a cancelled context publishes nothing.
	obj, err = st.Stage(ctx)
	mustNoError(t, err, "Stage")
	_, err = obj.Write([]byte("cancelled"))
	mustNoError(t, err, "Write of staged bytes")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	mustErrorIs(t, obj.Commit(cctx, "legacy/cancelled"), context.Canceled, "Commit %q with a cancelled context", "legacy/cancelled")
	requireNotFound(t, b, "legacy/cancelled")

	// Non-CAS keys can be committed too.
	thumb := "thumbnails/" + h.String() + "_150.jpg"
	obj, err = st.Stage(ctx)
	mustNoError(t, err, "Stage")
	_, err = obj.Write([]byte("thumb"))
	mustNoError(t, err, "Write of staged bytes")
	mustNoError(t, obj.Commit(ctx, thumb), "Commit %q", thumb)

	// Other bytes over an existing key: ErrExists, original intact.
	obj, err = st.Stage(ctx)
	mustNoError(t, err, "Stage")
	_, err = obj.Write([]byte("other bytes"))
	mustNoError(t, err, "Write of staged bytes")
	mustErrorIs(t, obj.Commit(ctx, thumb), cas.ErrExists, "Commit of other bytes over existing %q", thumb)
	mustEqualBytes(t, readKey(t, b, thumb), []byte("thumb"), "bytes of %q after a refused Commit", thumb)

	testStagedReplacer(t, b, st, thumb)

	mustEqualKeys(t, listKeys(t, b, ""), []string{h.Key(), thumb}, "only committed objects must be listed")
}

// testStagedReplacer checks CommitReplace when the Stager's Staged is a
// cas.StagedReplacer: it publishes over the existing object key, and
// under a blob key over the blob's compressed form (Stat then reports the
// plain one).
func testStagedReplacer(t *testing.T, b cas.Backend, st cas.Stager, key string) {
	ctx := t.Context()
	stage := func(p []byte) cas.StagedReplacer {
		t.Helper()
		obj, err := st.Stage(ctx)
		mustNoError(t, err, "Stage")
		r, ok := obj.(cas.StagedReplacer)
		if !ok {
			mustNoError(t, obj.Abort(), "Abort")
			return nil
		}
		_, err = r.Write(p)
		mustNoError(t, err, "Write of staged bytes")
		return r
	}
	r := stage([]byte("replaced"))
	if r == nil {
		return
	}
	mustNoError(t, r.CommitReplace(ctx, key), "CommitReplace over existing %q", key)
	mustEqualBytes(t, readKey(t, b, key), []byte("replaced"), "bytes of %q after CommitReplace", key)

	p := text(100 << 10)
	res, err := cas.New(b, cas.WithCompression(cas.Compression{ChunkSize: 64 << 10}), cas.WithTempDir(t.TempDir())).Put(ctx, bytes.NewReader(p))
	mustNoError(t, err, "Store.Put with compression")
	blob := res.Hash.Key()
	mustNoError(t, stage(p).CommitReplace(ctx, blob), "CommitReplace over %q stored compressed", blob)
	info, err := b.Stat(ctx, blob)
	mustNoError(t, err, "Stat %q", blob)
	mustInfo(t, info, cas.Info{Key: blob, Size: int64(len(p)), StoredSize: int64(len(p))}, "Stat after CommitReplace over the compressed form")
	mustEqualBytes(t, readKey(t, b, blob), p, "bytes of %q after CommitReplace", blob)
	mustNoError(t, b.Delete(ctx, blob), "Delete %q", blob)
	requireNotFound(t, b, blob)
}

// testCheckedStager: through cas.Checked, a Staged's Commit publishes
// nothing when its key is refused: a blob key the staged bytes do not hash
// to (ErrDigestMismatch), a key under a derived prefix that is no
// cas.DerivedKey, a key CheckKey refuses (ErrInvalidKey). Writes fail once
// the context given to Stage is done.
func testCheckedStager(t *testing.T, b cas.Backend) {
	st, ok := b.(cas.Stager)
	if !ok {
		t.Skipf("%T does not implement cas.Stager", b)
	}
	ctx := t.Context()
	hello := cas.SumBytes([]byte("hello"))
	stage := func(p []byte) cas.Staged {
		t.Helper()
		obj, err := st.Stage(ctx)
		mustNoError(t, err, "Stage")
		for chunk := range slices.Chunk(p, 3) {
			_, err := obj.Write(chunk)
			mustNoError(t, err, "Write of %d staged bytes", len(chunk))
		}
		return obj
	}

	mustErrorIs(t, stage([]byte("evil")).Commit(ctx, hello.Key()), cas.ErrDigestMismatch, "Commit of other bytes under %q", hello.Key())
	requireNotFound(t, b, hello.Key())
	mustErrorIs(t, stage(nil).Commit(ctx, hello.Key()), cas.ErrDigestMismatch, "Commit of no bytes under %q", hello.Key())
	requireNotFound(t, b, hello.Key())
	for _, key := range []string{cas.ThumbnailPrefix + "zzz", cas.ThumbnailPrefix + hello.String(), "/abs", "a//b", "cas/notahash"} {
		mustErrorIs(t, stage([]byte("x")).Commit(ctx, key), cas.ErrInvalidKey, "Commit under %q", key)
		if cas.CheckKey(key) == nil {
			requireNotFound(t, b, key)
		}
	}
	mustListNothing(t, b, "", "after refused Commits")

	mustNoError(t, stage([]byte("hello")).Commit(ctx, hello.Key()), "Commit of its bytes under %q", hello.Key())
	mustEqualBytes(t, readKey(t, b, hello.Key()), []byte("hello"), "bytes of %q", hello.Key())
	thumb := cas.DerivedKey(cas.ThumbnailPrefix, hello, "150.jpg")
	mustNoError(t, stage([]byte("jpeg")).Commit(ctx, thumb), "Commit under %q", thumb)
	mustEqualBytes(t, readKey(t, b, thumb), []byte("jpeg"), "bytes of %q", thumb)

	cctx, cancel := context.WithCancel(ctx)
	obj, err := st.Stage(cctx)
	mustNoError(t, err, "Stage")
	cancel()
	_, err = obj.Write([]byte("late"))
	mustErrorIs(t, err, context.Canceled, "Write after the Stage context was cancelled")
	mustNoError(t, obj.Abort(), "Abort")
	mustEqualKeys(t, listKeys(t, b, ""), []string{hello.Key(), thumb}, "only the accepted Commits are listed")
}

// testFileObject checks the cas.FileObject contract on the Backend's
// Objects, when they implement it: the file holds exactly the object's
// bytes (Stat size, positioned reads, and reads after a Seek through the
// file), and Close of the Object closes the file.
func testFileObject(t *testing.T, b cas.Backend) {
	ctx := t.Context()
	for _, n := range []int{0, 1, 70 << 10} {
		p := data(uint64(70+n), n)
		key := cas.SumBytes(p).Key()
		put(t, b, key, p, cas.PutOptions{})
		obj, err := b.Open(ctx, key)
		mustNoError(t, err, "Open %q", key)
		fo, ok := obj.(cas.FileObject)
		if !ok {
			_ = obj.Close()
			t.Skipf("%T does not implement cas.FileObject", obj)
		}
		checkFileObject(t, fo, p)
	}
}

// checkFileObject checks one open FileObject holding p, and closes it.
func checkFileObject(t *testing.T, fo cas.FileObject, p []byte) {
	t.Helper()
	key := fo.Info().Key
	f := fo.File()
	if f == nil {
		_ = fo.Close()
		t.Fatalf("File of %q is nil", key)
	}
	if f != fo.File() {
		t.Errorf("File of %q returns a different file on a second call", key)
	}
	if size := fo.Info().Size; size != int64(len(p)) {
		t.Errorf("Info().Size of %q = %d, want %d", key, size, len(p))
	}
	fi, err := f.Stat()
	mustNoError(t, err, "Stat of the file of %q", key)
	if fi.Size() != int64(len(p)) {
		t.Errorf("the file of %q is %d bytes, want %d (Info().Size)", key, fi.Size(), len(p))
	}
	// Positioned reads do not depend on the file's offset.
	got, err := io.ReadAll(io.NewSectionReader(f, 0, int64(len(p))+1))
	mustNoError(t, err, "ReadAt of the file of %q", key)
	mustEqualBytes(t, got, p, "the file of %q, read from offset 0", key)
	// The Object's reads and the file's share an offset: a caller that
	// reads both seeks first.
	half := make([]byte, len(p)/2)
	_, err = io.ReadFull(fo, half)
	mustNoError(t, err, "Read of the first %d bytes of %q", len(half), key)
	pos, err := f.Seek(0, io.SeekStart)
	mustPos(t, pos, err, 0, "Seek of the file of %q to 0", key)
	got, err = io.ReadAll(f)
	mustNoError(t, err, "read of the file of %q after a Seek to 0", key)
	mustEqualBytes(t, got, p, "the file of %q, read after a Seek to 0", key)

	mustNoError(t, fo.Close(), "Close of %q", key)
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read of the file of %q after Close of the Object: got %v, want os.ErrClosed (Close must close the file)", key, err)
	}
}

// text returns n compressible bytes: numbered lines of text.
func text(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "line %d: R%d 10k 0603 Yageo, C%d 100n 0402 Murata\n", i, i%400, i%300)
	}
	return b[:n]
}

// mustInfo stops the test unless got has want's Key, Encoding, Size and
// StoredSize.
func mustInfo(t *testing.T, got, want cas.Info, format string, args ...any) {
	t.Helper()
	got.ModTime, want.ModTime = time.Time{}, time.Time{}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%s: Info (-want +got):\n%s", fmt.Sprintf(format, args...), d)
	}
}

// testEncoding checks the encoding marker: a cas.Store with compression
// stores a compressible blob marked cas.EncodingZstd, which Stat, Open and
// List report with the decoded Size and the StoredSize the Backend holds
// (plain objects: StoredSize = Size); a Backend records the marker it is
// given on Put (Thin); the stored bytes, uploaded as a blob of their own,
// stay plain and read back byte for byte; the two forms of one blob are
// one object (create-only Put and Delete see either, a Put without IfAbsent
// of one form replaces the other, marker included).
func testEncoding(t *testing.T, b cas.Backend, thin bool) {
	ctx := t.Context()
	p := text(200 << 10)
	s := cas.New(b, cas.WithCompression(cas.Compression{ChunkSize: 64 << 10}), cas.WithTempDir(t.TempDir()))
	res, err := s.Put(ctx, bytes.NewReader(p))
	mustNoError(t, err, "Store.Put with compression")
	key := res.Hash.Key()
	info, err := b.Stat(ctx, key)
	mustNoError(t, err, "Stat %q", key)
	if info.Encoding != cas.EncodingZstd || info.StoredSize <= 0 || info.StoredSize >= info.Size {
		t.Fatalf("Stat of a blob stored compressed: Encoding %q, StoredSize %d, Size %d; want %q and 0 < StoredSize < Size",
			info.Encoding, info.StoredSize, info.Size, cas.EncodingZstd)
	}
	want := cas.Info{Key: key, Size: int64(len(p)), Encoding: cas.EncodingZstd, StoredSize: info.StoredSize}
	mustInfo(t, info, want, "Stat %q", key)

	obj, err := b.Open(ctx, key)
	mustNoError(t, err, "Open %q", key)
	mustInfo(t, obj.Info(), want, "Open %q", key)
	stored, err := io.ReadAll(obj)
	_ = obj.Close()
	mustNoError(t, err, "read %q", key)
	if int64(len(stored)) != info.StoredSize {
		t.Fatalf("Open %q of an encoded blob: read %d bytes, want StoredSize %d (the stored bytes)", key, len(stored), info.StoredSize)
	}
	var listed []cas.Info
	for li, err := range b.List(ctx, cas.KeyPrefix) {
		mustNoError(t, err, "List")
		listed = append(listed, li)
	}
	if len(listed) != 1 {
		t.Fatalf("List %q: %d objects, want 1", cas.KeyPrefix, len(listed))
	}
	mustInfo(t, listed[0], want, "List")
	var keys []cas.KeyInfo
	for ki, err := range cas.ListKeys(ctx, b, cas.KeyPrefix) {
		mustNoError(t, err, "ListKeys")
		keys = append(keys, ki)
	}
	if len(keys) != 1 || keys[0].Key != key || keys[0].StoredSize != info.StoredSize || keys[0].ModTime.IsZero() {
		t.Fatalf("ListKeys %q of a blob stored compressed: %+v, want one with key %q and StoredSize %d (the bytes held)",
			cas.KeyPrefix, keys, key, info.StoredSize)
	}
	plainStore := cas.New(b, cas.WithTempDir(t.TempDir()))
	r, err := plainStore.Open(ctx, res.Hash)
	mustNoError(t, err, "Store.Open without compression")
	got, err := io.ReadAll(r)
	_ = r.Close()
	mustNoError(t, err, "Store read without compression")
	mustEqualBytes(t, got, p, "a Store without compression reads the blob")
	mustNoError(t, plainStore.Verify(ctx, res.Hash), "Verify")

	// The create-only plain form of the same blob exists already.
	err = b.Put(ctx, key, bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true})
	mustErrorIs(t, err, cas.ErrExists, "create-only plain Put of a blob stored compressed")
	dup, err := plainStore.Put(ctx, bytes.NewReader(p))
	mustNoError(t, err, "plain Store.Put of a blob stored compressed")
	if !dup.Deduplicated {
		t.Fatalf("plain Store.Put of a blob stored compressed: not deduplicated")
	}

	// A Put without IfAbsent of the other form replaces the blob's stored
	// form, marker included (a Store repairs a corrupt form so): a plain
	// Put over the compressed form, and (Thin) back.
	err = b.Put(ctx, key, bytes.NewReader(p), int64(len(p)), cas.PutOptions{})
	mustNoError(t, err, "plain Put without IfAbsent over a blob stored compressed")
	info, err = b.Stat(ctx, key)
	mustNoError(t, err, "Stat %q", key)
	mustInfo(t, info, cas.Info{Key: key, Size: int64(len(p)), StoredSize: int64(len(p))}, "Stat after a plain Put replaced the compressed form")
	mustEqualBytes(t, readKey(t, b, key), p, "bytes after a plain Put replaced the compressed form")
	if thin {
		err = b.Put(ctx, key, bytes.NewReader(stored), int64(len(stored)), cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(p))})
		mustNoError(t, err, "encoded Put without IfAbsent over a blob stored plain")
		info, err = b.Stat(ctx, key)
		mustNoError(t, err, "Stat %q", key)
		mustInfo(t, info, want, "Stat after an encoded Put replaced the plain form")
	}

	// The stored bytes are a zstd stream; uploaded, they are stored plain.
	up, err := plainStore.Put(ctx, bytes.NewReader(stored))
	mustNoError(t, err, "Store.Put of zstd bytes")
	upInfo, err := b.Stat(ctx, up.Hash.Key())
	mustNoError(t, err, "Stat %q", up.Hash.Key())
	mustInfo(t, upInfo, cas.Info{Key: up.Hash.Key(), Size: int64(len(stored)), StoredSize: int64(len(stored))}, "Stat of uploaded zstd bytes")
	mustEqualBytes(t, readKey(t, b, up.Hash.Key()), stored, "uploaded zstd bytes read back")

	mustNoError(t, b.Delete(ctx, key), "Delete %q", key)
	requireNotFound(t, b, key)

	// A Backend records the marker it is given; the checked layer lets
	// only a Store write it.
	err = b.Put(ctx, key, bytes.NewReader(stored), int64(len(stored)), cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(p))})
	if !thin {
		mustErrorIs(t, err, cas.ErrUnsupported, "encoded Put through cas.Checked")
		requireNotFound(t, b, key)
		return
	}
	mustNoError(t, err, "Put %q with Encoding %q", key, cas.EncodingZstd)
	info, err = b.Stat(ctx, key)
	mustNoError(t, err, "Stat %q", key)
	mustInfo(t, info, want, "Stat after an encoded Put")
	got, err = readStore(ctx, plainStore, res.Hash)
	mustNoError(t, err, "Store read of an encoded Put")
	mustEqualBytes(t, got, p, "Store read of an encoded Put")
	mustNoError(t, b.Delete(ctx, key), "Delete %q", key)
	requireNotFound(t, b, key)
}

// readStore reads the blob h through s.
func readStore(ctx context.Context, s *cas.Store, h cas.Hash) ([]byte, error) {
	r, err := s.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// testPresigner checks the cas.Presigner contract when the Backend
// implements it: through the checked layer exactly when raw does; a GET of
// the URL (net/http's default client) returns the object's bytes with the
// response headers asked for, a Range GET its range, and a missing key
// no 2xx; and through the checked layer, invalid options, keys and a done
// context are refused before the Backend is called.
func testPresigner(t *testing.T, raw, b cas.Backend) {
	_, rawOK := raw.(cas.Presigner)
	ps, ok := b.(cas.Presigner)
	if ok != rawOK {
		t.Fatalf("%T is a cas.Presigner: %v; %T over it: %v", raw, rawOK, b, ok)
	}
	if !ok {
		t.Skipf("%T does not implement cas.Presigner", raw)
	}
	ctx := t.Context()
	p := data(90, 3000)
	key := cas.SumBytes(p).Key()
	put(t, b, key, p, cas.PutOptions{})
	opts := cas.PresignOptions{
		Expires:            time.Minute,
		ContentType:        "application/pdf",
		ContentDisposition: `attachment; filename="a b.pdf"; filename*=UTF-8''a%20b.pdf`,
		CacheControl:       "private, max-age=30",
	}
	u, err := ps.PresignGet(ctx, key, opts)
	mustNoError(t, err, "PresignGet %q", key)

	get := func(u, rng string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		mustNoError(t, err, "request for %q", u)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		mustNoError(t, err, "GET %q", u)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		mustNoError(t, err, "body of GET %q", u)
		return resp, body
	}
	resp, body := get(u, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET of the presigned URL: status %d, want 200; body %.300q", resp.StatusCode, body)
	}
	mustEqualBytes(t, body, p, "body of the presigned GET")
	for name, want := range map[string]string{
		"Content-Type":        opts.ContentType,
		"Content-Disposition": opts.ContentDisposition,
		"Cache-Control":       opts.CacheControl,
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("presigned GET: %s %q, want %q", name, got, want)
		}
	}
	resp, body = get(u, "bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("Range GET of the presigned URL: status %d, want 206", resp.StatusCode)
	}
	mustEqualBytes(t, body, p[100:200], "body of the presigned Range GET")

	missing := cas.SumBytes([]byte("missing")).Key()
	u, err = ps.PresignGet(ctx, missing, opts)
	mustNoError(t, err, "PresignGet of the missing key %q (no request is made)", missing)
	if resp, _ = get(u, ""); resp.StatusCode < 300 {
		t.Errorf("GET of a presigned URL of a missing key: status %d, want an error", resp.StatusCode)
	}

	if raw == b {
		return // the rest is the checked layer's
	}
	for _, bad := range []cas.PresignOptions{
		{},
		{Expires: -time.Second},
		{Expires: time.Minute, ContentType: "text/plain\r\nX-Evil: 1"},
		{Expires: time.Minute, ContentDisposition: "attachment; filename=\"\x00\""},
		{Expires: time.Minute, CacheControl: "max-age=1\n"},
		{Expires: time.Minute, ContentDisposition: "inline; filename=\"\u00e9\""},
	} {
		_, err := ps.PresignGet(ctx, key, bad)
		mustErrorIs(t, err, cas.ErrInvalidPresign, "PresignGet with %+v", bad)
	}
	for _, k := range []string{"", string([]byte{0xff}), strings.Repeat("a", cas.MaxKeyLen+1)} {
		_, err := ps.PresignGet(ctx, k, opts)
		mustErrorIs(t, err, cas.ErrInvalidKey, "PresignGet of key %q", k)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = ps.PresignGet(cctx, key, opts)
	mustErrorIs(t, err, context.Canceled, "PresignGet under a cancelled context")
}
