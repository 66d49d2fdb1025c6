package castest

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"

	"github.com/casa-go/casa/cas"
)

// testEncodedCommitter checks the cas.EncodedCommitter contract when the
// Backend's Staged implements it: CommitEncoded publishes the staged
// bytes as the blob's encoded form (Stat, Open and List report the
// encoding, the decoded Size and the StoredSize, and a Store reads the
// blob), create-only against either form with IfAbsent and replacing
// either form without it, and publishes nothing for a
// decoded size the bytes' seek table does not record, a key that is no
// blob key, an unknown encoding or a done context. Through cas.Checked the
// Staged does not offer the method: only a Store commits encoded bytes.
func testEncodedCommitter(t *testing.T, raw, b cas.Backend) {
	st, ok := raw.(cas.Stager)
	if !ok {
		t.Skipf("%T does not implement cas.Stager", raw)
	}
	ctx := t.Context()
	probe, err := st.Stage(ctx)
	mustNoError(t, err, "Stage")
	_, can := probe.(cas.EncodedCommitter)
	mustNoError(t, probe.Abort(), "Abort")
	if cs, ok := b.(cas.Stager); ok && b != raw {
		obj, err := cs.Stage(ctx)
		mustNoError(t, err, "Stage through cas.Checked")
		if _, ok := obj.(cas.EncodedCommitter); ok {
			t.Errorf("a Staged of cas.Checked implements cas.EncodedCommitter: only a Store may commit encoded bytes")
		}
		mustNoError(t, obj.Abort(), "Abort")
		return
	}
	if !can {
		t.Skipf("the Staged of %T does not implement cas.EncodedCommitter", raw)
	}

	// The stored form of a compressible blob, made by a Store.
	p := text(300 << 10)
	s := cas.New(b, cas.WithCompression(cas.Compression{ChunkSize: 64 << 10}), cas.WithTempDir(t.TempDir()))
	res, err := s.Put(ctx, bytes.NewReader(p))
	mustNoError(t, err, "Store.Put with compression")
	key := res.Hash.Key()
	obj, err := b.Open(ctx, key)
	mustNoError(t, err, "Open %q", key)
	stored, err := io.ReadAll(obj)
	_ = obj.Close()
	mustNoError(t, err, "read %q", key)
	if obj.Info().Encoding != cas.EncodingZstd {
		t.Fatalf("Store.Put with compression of %d text bytes: Encoding %q, want %q", len(p), obj.Info().Encoding, cas.EncodingZstd)
	}
	mustNoError(t, b.Delete(ctx, key), "Delete %q", key)

	replace := false
	commit := func(ctx context.Context, key, encoding string, decoded int64) error {
		t.Helper()
		obj, err := st.Stage(t.Context())
		mustNoError(t, err, "Stage")
		for chunk := range slices.Chunk(stored, 5000) {
			_, err := obj.Write(chunk)
			mustNoError(t, err, "Write of %d staged bytes", len(chunk))
		}
		opts := cas.PutOptions{IfAbsent: !replace, Encoding: encoding, DecodedSize: decoded}
		return obj.(cas.EncodedCommitter).CommitEncoded(ctx, key, opts)
	}
	n := int64(len(p))
	mustError(t, commit(ctx, key, cas.EncodingZstd, n+1), "CommitEncoded with a decoded size the seek table does not record")
	requireNotFound(t, b, key)
	mustErrorIs(t, commit(ctx, key, "gzip", n), cas.ErrUnsupported, "CommitEncoded in an unknown encoding")
	requireNotFound(t, b, key)
	thumb := cas.DerivedKey(cas.ThumbnailPrefix, res.Hash, "150.jpg")
	mustError(t, commit(ctx, thumb, cas.EncodingZstd, n), "CommitEncoded under %q, no blob key", thumb)
	requireNotFound(t, b, thumb)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	mustErrorIs(t, commit(cctx, key, cas.EncodingZstd, n), context.Canceled, "CommitEncoded with a cancelled context")
	requireNotFound(t, b, key)
	mustListNothing(t, b, "", "after refused CommitEncoded calls")

	mustNoError(t, commit(ctx, key, cas.EncodingZstd, n), "CommitEncoded %q", key)
	want := cas.Info{Key: key, Size: n, Encoding: cas.EncodingZstd, StoredSize: int64(len(stored))}
	info, err := b.Stat(ctx, key)
	mustNoError(t, err, "Stat %q", key)
	mustInfo(t, info, want, "Stat after CommitEncoded")
	mustEqualBytes(t, readEncoded(t, b, key), stored, "stored bytes of %q", key)
	got, err := readStore(ctx, cas.New(b, cas.WithTempDir(t.TempDir())), res.Hash)
	mustNoError(t, err, "Store read after CommitEncoded")
	mustEqualBytes(t, got, p, "Store read after CommitEncoded")

	// Create-only against either form.
	mustErrorIs(t, commit(ctx, key, cas.EncodingZstd, n), cas.ErrExists, "CommitEncoded over the encoded form of %q", key)
	mustNoError(t, b.Delete(ctx, key), "Delete %q", key)
	put(t, b, key, p, cas.PutOptions{IfAbsent: true})
	mustErrorIs(t, commit(ctx, key, cas.EncodingZstd, n), cas.ErrExists, "CommitEncoded over the plain form of %q", key)
	mustEqualBytes(t, readKey(t, b, key), p, "the plain form of %q after a refused CommitEncoded", key)
	mustEqualKeys(t, listKeys(t, b, ""), []string{key}, "one object after the refused CommitEncoded")

	// Without IfAbsent it replaces either form.
	replace = true
	mustNoError(t, commit(ctx, key, cas.EncodingZstd, n), "replacing CommitEncoded over the plain form of %q", key)
	info, err = b.Stat(ctx, key)
	mustNoError(t, err, "Stat %q", key)
	mustInfo(t, info, want, "Stat after a replacing CommitEncoded over the plain form")
	mustNoError(t, commit(ctx, key, cas.EncodingZstd, n), "replacing CommitEncoded over the encoded form of %q", key)
	info, err = b.Stat(ctx, key)
	mustNoError(t, err, "Stat %q", key)
	mustInfo(t, info, want, "Stat after a replacing CommitEncoded over the encoded form")
	mustEqualBytes(t, readEncoded(t, b, key), stored, "stored bytes of %q after replacing", key)
	mustEqualKeys(t, listKeys(t, b, ""), []string{key}, "one object after the replacing CommitEncoded calls")
}

// readEncoded returns the stored bytes of key, which must be encoded.
func readEncoded(t *testing.T, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(t.Context(), key)
	mustNoError(t, err, "Open %q", key)
	defer obj.Close()
	p, err := io.ReadAll(obj)
	mustNoError(t, err, "read %q", key)
	if int64(len(p)) != obj.Info().StoredSize {
		t.Fatalf("Open %q: read %d bytes, want StoredSize %d", key, len(p), obj.Info().StoredSize)
	}
	return p
}
