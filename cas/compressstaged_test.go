package cas_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// TestCompressionStreamsIntoStaged: over a Backend whose Staged commits
// encoded bytes (fsstore), a compressed Put writes its frames straight into
// the staged file and commits them encoded: no Backend.Put, no spool (the
// spool directory does not even exist), deduplication against either form
// before committing, and a failure at any step leaves nothing.
func TestCompressionStreamsIntoStaged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner, tmps, f := faultyFS(t)
	noSpool := filepath.Join(t.TempDir(), "missing")
	s := cas.New(f.Staging(), cas.WithCompression(smallChunks), cas.WithSpoolThreshold(1024), cas.WithTempDir(noSpool))
	data := testutil.Text(21, 500<<10)

	res, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err, "a compressed Put that needed the spool would fail: its directory does not exist")
	require.False(t, res.Deduplicated)
	require.Equal(t, cas.SumBytes(data), res.Hash)
	require.Zero(t, f.Calls(faulty.MethodPut), "no Backend.Put")
	require.Equal(t, 1, f.Calls(faulty.MethodCommitEncoded))
	info, err := s.Stat(ctx, res.Hash)
	require.NoError(t, err)
	require.Equal(t, cas.EncodingZstd, info.Encoding)
	require.EqualValues(t, len(data), info.Size)
	require.Less(t, info.StoredSize, info.Size/2)
	require.Equal(t, data, readAll(t, s, res.Hash))
	require.NoError(t, s.Verify(ctx, res.Hash))
	requireNoFiles(t, tmps...)

	again, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.True(t, again.Deduplicated)
	require.Equal(t, 1, f.Calls(faulty.MethodCommitEncoded), "a duplicate is found before committing")
	require.Equal(t, 1, f.Calls(faulty.MethodAbort), "and its staged file discarded")
	require.Equal(t, []string{res.Hash.Key()}, keys(t, inner))
	requireNoFiles(t, tmps...)

	// The plain form of another blob exists: the compressed Put is
	// deduplicated against it and leaves it as it is.
	other := testutil.Text(22, 200<<10)
	plain, err := cas.New(inner).Put(ctx, bytes.NewReader(other))
	require.NoError(t, err)
	dup, err := s.Put(ctx, bytes.NewReader(other))
	require.NoError(t, err)
	require.True(t, dup.Deduplicated)
	info, err = s.Stat(ctx, plain.Hash)
	require.NoError(t, err)
	require.Empty(t, info.Encoding, "the plain form stays")
	requireNoFiles(t, tmps...)

	want := keys(t, inner)
	// A reader that fails mid-blob.
	boom := errors.New("boom")
	_, err = s.Put(ctx, io.MultiReader(bytes.NewReader(testutil.Text(23, 300<<10)), iotest.ErrReader(boom)))
	require.ErrorIs(t, err, boom)
	// A failing commit.
	f.FailNth(faulty.MethodCommitEncoded, f.Calls(faulty.MethodCommitEncoded)+1)
	_, err = s.Put(ctx, bytes.NewReader(testutil.Text(24, 300<<10)))
	require.ErrorIs(t, err, faulty.ErrInjected)
	// A hook that refuses.
	refused := errors.New("refused")
	hooked := cas.New(f.Staging(), cas.WithCompression(smallChunks), cas.WithTempDir(noSpool),
		cas.WithPutHook(func(context.Context, cas.Hash) error { return refused }))
	_, err = hooked.Put(ctx, bytes.NewReader(testutil.Text(25, 300<<10)))
	require.ErrorIs(t, err, refused)
	// An expected digest that differs.
	_, err = s.PutVerified(ctx, cas.SumBytes([]byte("other")), bytes.NewReader(testutil.Text(26, 300<<10)))
	require.ErrorIs(t, err, cas.ErrDigestMismatch)
	require.Equal(t, want, keys(t, inner), "nothing stored by the failed Puts")
	requireNoFiles(t, tmps...)
}

// hiddenEncoded is a Stager whose Staged does not commit encoded bytes,
// as a third-party Stager's may not.
type hiddenEncoded struct {
	cas.Backend
	st cas.Stager
}

func (h hiddenEncoded) Stage(ctx context.Context) (cas.Staged, error) {
	obj, err := h.st.Stage(ctx)
	if err != nil {
		return nil, err
	}
	return struct{ cas.Staged }{obj}, nil
}

// TestCompressionStagerWithoutEncodedCommit: over a Stager whose Staged is
// no cas.EncodedCommitter, a compressed Put spools and uploads the frames
// with an encoded Backend.Put, and the staged object it probed with is
// aborted (no temporary file left).
func TestCompressionStagerWithoutEncodedCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, tmps, f := faultyFS(t)
	spool := t.TempDir()
	s := cas.New(hiddenEncoded{Backend: f, st: f.Staging().(cas.Stager)}, cas.WithCompression(smallChunks), cas.WithSpoolThreshold(1024), cas.WithTempDir(spool))
	data := testutil.Text(27, 500<<10)
	res, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, 1, f.Calls(faulty.MethodPut), "uploaded by Backend.Put")
	require.Zero(t, f.Calls(faulty.MethodCommitEncoded))
	require.Equal(t, 1, f.Calls(faulty.MethodAbort), "the probing Staged is aborted")
	info, err := s.Stat(ctx, res.Hash)
	require.NoError(t, err)
	require.Equal(t, cas.EncodingZstd, info.Encoding)
	require.Equal(t, data, readAll(t, s, res.Hash))
	requireNoFiles(t, append(tmps, spool)...)
}

// encoderFunc is a cas.FrameEncoder from a function.
type encoderFunc func(src, dst []byte) []byte

func (f encoderFunc) EncodeAll(src, dst []byte) []byte { return f(src, dst) }

// TestCompressionEncoder: the policy's Encoder compresses the chunks
// instead of the Store's own; one whose frames lack the content checksum
// (which reads check), or that writes no zstd frame, fails the Put with
// ErrUnsupported on every route, storing nothing and leaving no temporary
// file.
func TestCompressionEncoder(t *testing.T) {
	t.Parallel()
	noCRC, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	require.NoError(t, err)
	withCRC, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	require.NoError(t, err)
	var calls atomic.Int64
	counting := encoderFunc(func(src, dst []byte) []byte { calls.Add(1); return withCRC.EncodeAll(src, dst) })
	data := testutil.Text(28, 300<<10)
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		b := bc.New(t)
		spool := t.TempDir()
		for name, enc := range map[string]cas.FrameEncoder{
			"no checksum": noCRC,
			"no frame":    encoderFunc(func(src, dst []byte) []byte { return append(dst, src[:len(src)/10]...) }),
			"nothing":     encoderFunc(func(src, dst []byte) []byte { return dst }),
		} {
			s := cas.New(b, cas.WithCompression(cas.Compression{ChunkSize: 64 << 10, Encoder: enc}), cas.WithSpoolThreshold(1024), cas.WithTempDir(spool))
			_, err := s.Put(t.Context(), bytes.NewReader(data))
			require.ErrorIs(t, err, cas.ErrUnsupported, name)
			require.Empty(t, keys(t, b), "%s: nothing stored", name)
			requireNoFiles(t, append(bc.TempDirs(b), spool)...)
		}
		before := calls.Load()
		s := cas.New(b, cas.WithCompression(cas.Compression{ChunkSize: 64 << 10, Encoder: counting}))
		res, err := s.Put(t.Context(), bytes.NewReader(data))
		require.NoError(t, err)
		require.GreaterOrEqual(t, calls.Load()-before, int64(5), "the policy's Encoder compressed the chunks (and the sample)")
		require.Equal(t, data, readAll(t, s, res.Hash))
	})
}

// recordingEncoded is a Stager whose Staged records the options of its
// CommitEncoded before committing through the inner one (fsstore's).
type recordingEncoded struct {
	cas.Backend
	st   cas.Stager
	mu   *sync.Mutex
	opts *[]cas.PutOptions
}

func (r recordingEncoded) Stage(ctx context.Context) (cas.Staged, error) {
	obj, err := r.st.Stage(ctx)
	if err != nil {
		return nil, err
	}
	return recordingStaged{Staged: obj, r: r}, nil
}

type recordingStaged struct {
	cas.Staged
	r recordingEncoded
}

func (s recordingStaged) CommitEncoded(ctx context.Context, key string, opts cas.PutOptions) error {
	s.r.mu.Lock()
	*s.r.opts = append(*s.r.opts, opts)
	s.r.mu.Unlock()
	return s.Staged.(cas.EncodedCommitter).CommitEncoded(ctx, key, opts)
}

// TestCompressionStagedKeepsContentType: a compressed Put streamed into a
// Staged commits it with the Put's content type, as the spooled route
// uploads it (PutOptions.ContentType), for a Backend that keeps one.
// Before, CommitEncoded got none.
func TestCompressionStagedKeepsContentType(t *testing.T) {
	t.Parallel()
	inner := backendtest.FS().New(t)
	var (
		mu  sync.Mutex
		got []cas.PutOptions
	)
	b := recordingEncoded{Backend: inner, st: inner.(cas.Stager), mu: &mu, opts: &got}
	s := cas.New(b, cas.WithCompression(smallChunks), cas.WithTempDir(t.TempDir()))
	data := testutil.Text(28, 300<<10)
	res, err := s.Put(t.Context(), bytes.NewReader(data), cas.ContentType("text/plain; charset=utf-8"))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1, "streamed into the Staged")
	require.Equal(t, "text/plain; charset=utf-8", got[0].ContentType)
	require.Equal(t, cas.EncodingZstd, got[0].Encoding)
	require.EqualValues(t, len(data), got[0].DecodedSize)
}
