package cas_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
)

// smallChunks is a policy with the smallest chunks, so that tests cross
// many frames with small blobs.
var smallChunks = cas.Compression{ChunkSize: 64 << 10}

// storedBytes reads the stored form of the blob h straight from b.
func storedBytes(t testing.TB, b cas.Backend, h cas.Hash) []byte {
	t.Helper()
	obj, err := cas.Checked(b).Open(t.Context(), h.Key())
	require.NoError(t, err)
	defer obj.Close()
	p, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.EqualValues(t, obj.Info().StoredSize, len(p))
	return p
}

// TestCompressionRoundTrip: on every backend, a compressible blob is stored
// compressed (smaller, marked zstd) under the hash and size of its bytes;
// it reads back whole and in ranges, through a Store with and without the
// option, Verify passes, Walk reports both sizes, and the stored bytes
// are one valid zstd stream (the seek table is a skippable frame).
func TestCompressionRoundTrip(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		s := cas.New(b, cas.WithCompression(smallChunks), cas.WithSpoolThreshold(100<<10), cas.WithTempDir(t.TempDir()))
		data := testutil.Text(1, 1<<20+12345)
		res, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, cas.SumBytes(data), res.Hash)
		require.EqualValues(t, len(data), res.Size)

		info, err := s.Stat(ctx, res.Hash)
		require.NoError(t, err)
		require.Equal(t, cas.EncodingZstd, info.Encoding)
		require.EqualValues(t, len(data), info.Size)
		require.Less(t, info.StoredSize*3, info.Size, "text compresses at least 3x")

		stored := storedBytes(t, b, res.Hash)
		dec, err := zstd.NewReader(nil)
		require.NoError(t, err)
		defer dec.Close()
		plain, err := dec.DecodeAll(stored, nil)
		require.NoError(t, err, "a plain zstd decoder reads the stored bytes")
		require.Equal(t, data, plain)

		for _, reader := range []*cas.Store{s, cas.New(b)} {
			obj, err := reader.Open(ctx, res.Hash)
			require.NoError(t, err)
			require.Equal(t, info.Size, obj.Info().Size)
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.Equal(t, data, got)
			rng := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				off := rng.Int64N(int64(len(data)))
				n := rng.IntN(200 << 10)
				_, err := obj.Seek(off, io.SeekStart)
				require.NoError(t, err)
				p := make([]byte, n)
				m, err := io.ReadFull(obj, p)
				want := data[off:min(off+int64(n), int64(len(data)))]
				require.Equal(t, len(want), m)
				require.Equal(t, want, p[:m])
				if m < n {
					require.ErrorIs(t, err, io.ErrUnexpectedEOF)
				}
			}
			require.NoError(t, obj.Close())
			require.NoError(t, reader.Verify(ctx, res.Hash))
		}
		var walked []cas.Info
		for info, err := range s.Walk(ctx) {
			require.NoError(t, err)
			walked = append(walked, info)
		}
		require.Len(t, walked, 1)
		require.Equal(t, cas.EncodingZstd, walked[0].Encoding)
		require.Equal(t, info.Size, walked[0].Size)
		require.Equal(t, info.StoredSize, walked[0].StoredSize)

		require.NoError(t, s.Delete(ctx, res.Hash))
		ok, err := s.Has(ctx, res.Hash)
		require.NoError(t, err)
		require.False(t, ok)
	})
}

// TestCompressionStoresZstdUploadRaw: an uploaded .zst file begins with the
// zstd magic number, like a compressed blob's stored bytes; it is stored
// as it is (no guess from the content) and comes back byte for byte, with
// and without the option, on every backend.
func TestCompressionStoresZstdUploadRaw(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		s := cas.New(b, cas.WithCompression(smallChunks))
		// The upload is exactly what a Store stores for other bytes:
		// frames and a seek table.
		res, err := s.Put(ctx, bytes.NewReader(testutil.Text(2, 200<<10)))
		require.NoError(t, err)
		upload := storedBytes(t, b, res.Hash)
		require.Equal(t, []byte{0x28, 0xB5, 0x2F, 0xFD}, upload[:4])

		for _, w := range []*cas.Store{s, cas.New(b)} {
			up, err := w.Put(ctx, bytes.NewReader(upload))
			require.NoError(t, err)
			info, err := w.Stat(ctx, up.Hash)
			require.NoError(t, err)
			require.Empty(t, info.Encoding, "stored as it is")
			require.EqualValues(t, len(upload), info.Size)
			require.EqualValues(t, len(upload), info.StoredSize)
			obj, err := w.Open(ctx, up.Hash)
			require.NoError(t, err)
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.NoError(t, obj.Close())
			require.Equal(t, upload, got, "byte for byte")
			require.NoError(t, w.Delete(ctx, up.Hash))
		}
	})
}

// TestCompressionRefused: already-compressed formats (by content or by the
// ContentType option), incompressible bytes and tiny blobs are stored as
// they are.
func TestCompressionRefused(t *testing.T) {
	t.Parallel()
	text := testutil.Text(3, 100<<10)
	cases := []struct {
		name string
		data []byte
		ct   string
	}{
		{"jpeg", append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, text...), ""},
		{"png", append([]byte("\x89PNG\r\n\x1a\n"), text...), ""},
		{"gzip", append([]byte{0x1F, 0x8B, 8, 0}, text...), ""},
		{"zip", append([]byte("PK\x03\x04"), text...), ""},
		{"mp4", append([]byte("\x00\x00\x00\x18ftypmp42"), text...), ""},
		{"webp", append([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), text...), ""},
		{"content type image/png", text, "image/png"},
		{"content type video", text, "video/mp4; codecs=avc1"},
		{"random", testutil.Bytes(4, 100<<10), ""},
		{"tiny", []byte("hello, hello"), ""},
		{"saves 5%", append(testutil.Bytes(5, 95<<10), make([]byte, 5<<10)...), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := cas.New(memstore.New(), cas.WithCompression(cas.Compression{}))
			var opts []cas.PutOption
			if c.ct != "" {
				opts = append(opts, cas.ContentType(c.ct))
			}
			res, err := s.Put(t.Context(), bytes.NewReader(c.data), opts...)
			require.NoError(t, err)
			info, err := s.Stat(t.Context(), res.Hash)
			require.NoError(t, err)
			require.Empty(t, info.Encoding)
			require.EqualValues(t, len(c.data), info.StoredSize)
		})
	}
	t.Run("content type text compresses", func(t *testing.T) {
		s := cas.New(memstore.New(), cas.WithCompression(cas.Compression{}))
		res, err := s.Put(t.Context(), bytes.NewReader(text), cas.ContentType("image/svg+xml"))
		require.NoError(t, err)
		info, err := s.Stat(t.Context(), res.Hash)
		require.NoError(t, err)
		require.Equal(t, cas.EncodingZstd, info.Encoding)
	})
}

// TestCompressionDedup: a blob stored in one form deduplicates a Put in
// the other, in both orders, on every backend; Has and Stat find either
// form and Delete removes it.
func TestCompressionDedup(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		plain, packed := cas.New(b), cas.New(b, cas.WithCompression(cas.Compression{}))
		data := testutil.Text(6, 300<<10)
		h := cas.SumBytes(data)
		for _, order := range [][2]*cas.Store{{plain, packed}, {packed, plain}} {
			first, err := order[0].Put(ctx, bytes.NewReader(data))
			require.NoError(t, err)
			require.False(t, first.Deduplicated)
			want, err := order[0].Stat(ctx, h)
			require.NoError(t, err)
			second, err := order[1].Put(ctx, bytes.NewReader(data))
			require.NoError(t, err)
			require.True(t, second.Deduplicated)
			got, err := order[1].Stat(ctx, h)
			require.NoError(t, err)
			require.Equal(t, want.Encoding, got.Encoding, "the first form stays")
			require.EqualValues(t, len(data), got.Size)
			require.NoError(t, order[1].Verify(ctx, h))
			require.NoError(t, order[1].Delete(ctx, h))
			ok, err := order[0].Has(ctx, h)
			require.NoError(t, err)
			require.False(t, ok, "Delete removed the blob in either form")
		}
	})
}

// TestCompressionCheckedRefusesEncodedPut: only a Store writes encoded
// bodies; a direct encoded Put through the checked layer is refused
// (nothing could check the key against the decoded bytes).
func TestCompressionCheckedRefusesEncodedPut(t *testing.T) {
	t.Parallel()
	b := memstore.New()
	p := []byte("anything")
	err := cas.Checked(b).Put(t.Context(), cas.SumBytes(p).Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: 8})
	require.ErrorIs(t, err, cas.ErrUnsupported)
	_, err = b.Stat(t.Context(), cas.SumBytes(p).Key())
	require.ErrorIs(t, err, cas.ErrNotFound)
}

// compressed returns a memstore holding data compressed in 64 KiB chunks,
// its hash and its stored bytes.
func compressed(t testing.TB, data []byte) (*memstore.Backend, cas.Hash, []byte) {
	t.Helper()
	b := memstore.New()
	res, err := cas.New(b, cas.WithCompression(smallChunks)).Put(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	return b, res.Hash, storedBytes(t, b, res.Hash)
}

// hostileStored is a table of damaged stored forms of a compressed blob:
// each must fail its reads with ErrCorrupt.
func hostileStored(stored []byte) map[string][]byte {
	n := len(stored)
	edit := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(stored)) }
	le := binary.LittleEndian
	e0 := n - 9 - 8*int(le.Uint32(stored[n-9:])) // the first seek table entry
	return map[string][]byte{
		"empty":               {},
		"truncated by 1":      stored[:n-1],
		"truncated to half":   stored[:n/2],
		"only the table":      stored[e0-8:],
		"frame byte flipped":  edit(func(p []byte) []byte { p[100] ^= 0x40; return p }),
		"frame checksum":      edit(func(p []byte) []byte { p[le.Uint32(p[e0:])-1] ^= 1; return p }), // last byte of frame 0
		"bad seekable magic":  edit(func(p []byte) []byte { p[n-1] ^= 1; return p }),
		"reserved bits":       edit(func(p []byte) []byte { p[n-5] = 0x04; return p }),
		"checksum flag":       edit(func(p []byte) []byte { p[n-5] = 0x80; return p }),
		"zero frames":         edit(func(p []byte) []byte { le.PutUint32(p[n-9:], 0); return p }),
		"huge frame count":    edit(func(p []byte) []byte { le.PutUint32(p[n-9:], 0xFFFFFFFF); return p }),
		"frame count off":     edit(func(p []byte) []byte { le.PutUint32(p[n-9:], le.Uint32(p[n-9:])-1); return p }),
		"skippable size off":  edit(func(p []byte) []byte { le.PutUint32(p[e0-4:], 3); return p }),
		"decoded size larger": edit(func(p []byte) []byte { le.PutUint32(p[n-13:], le.Uint32(p[n-13:])+1); return p }),
		"decoded size zero":   edit(func(p []byte) []byte { le.PutUint32(p[n-13:], 0); return p }),
		"decoded size huge":   edit(func(p []byte) []byte { le.PutUint32(p[n-13:], 0xFFFFFFFF); return p }),
		"stored size off":     edit(func(p []byte) []byte { le.PutUint32(p[n-17:], le.Uint32(p[n-17:])+1); return p }),
		"frames swapped": edit(func(p []byte) []byte {
			a, b := le.Uint32(p[e0:]), le.Uint32(p[e0+8:])
			le.PutUint32(p[e0:], b)
			le.PutUint32(p[e0+8:], a)
			return p
		}),
		"garbage": testutil.Bytes(9, n),
	}
}

// TestCompressionCorrupt: a damaged or truncated compressed object fails
// its reads (whole, ranged, the last frame) and Verify with errors
// wrapping cas.ErrCorrupt (Verify's also ErrDigestMismatch), never a
// panic or wrong bytes.
func TestCompressionCorrupt(t *testing.T) {
	t.Parallel()
	data := testutil.Text(7, 5*64<<10) // exactly 5 frames
	_, h, stored := compressed(t, data)
	for name, bad := range hostileStored(stored) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := memstore.New()
			// The damaged bytes, marked as the Store marks them, straight
			// into the Backend.
			require.NoError(t, b.Put(ctx, h.Key(), bytes.NewReader(bad), int64(len(bad)), cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(data))}))
			s := cas.New(b)
			obj, err := s.Open(ctx, h)
			require.NoError(t, err)
			got, err := io.ReadAll(obj)
			require.ErrorIs(t, err, cas.ErrCorrupt)
			require.Equal(t, data[:len(got)], got, "the bytes before the error are right")
			_, err = obj.Seek(int64(len(data))-10, io.SeekStart)
			require.NoError(t, err)
			_, err = io.ReadAll(obj)
			require.ErrorIs(t, err, cas.ErrCorrupt, "a sticky error")
			require.NoError(t, obj.Close())
			err = s.Verify(ctx, h)
			require.ErrorIs(t, err, cas.ErrCorrupt)
			require.ErrorIs(t, err, cas.ErrDigestMismatch)
		})
	}
}

// TestCompressionRangeFrames: a 1 KiB read in the middle of a compressed
// blob decodes at most two frames (one, unless it crosses a boundary).
func TestCompressionRangeFrames(t *testing.T) {
	t.Parallel()
	data := testutil.Text(8, 8<<20)
	b := memstore.New()
	_, err := cas.New(b, cas.WithCompression(cas.Compression{})).Put(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	for _, off := range []int64{4<<20 + 100, 4<<20 - 512} {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		s := cas.New(b, cas.WithMeterProvider(mp))
		obj, err := s.Open(t.Context(), cas.SumBytes(data))
		require.NoError(t, err)
		_, err = obj.Seek(off, io.SeekStart)
		require.NoError(t, err)
		p := make([]byte, 1024)
		_, err = io.ReadFull(obj, p)
		require.NoError(t, err)
		require.Equal(t, data[off:off+1024], p)
		require.NoError(t, obj.Close())
		frames := collectSums(t, reader)[cas.MetricFramesDecoded][""]
		want := int64(1)
		if off%(1<<20) > 1<<20-1024 {
			want = 2
		}
		require.Equal(t, want, frames, "frames decoded for a 1 KiB read at %d", off)
		require.NoError(t, mp.Shutdown(context.Background()))
	}
}

// TestCompressionPolicyPanics: policy values out of range panic at
// construction.
func TestCompressionPolicyPanics(t *testing.T) {
	t.Parallel()
	for _, p := range []cas.Compression{{MinSaving: -0.1}, {MinSaving: 1}, {ChunkSize: 1000}, {ChunkSize: cas.MaxChunkSize + 1}, {Level: 5}, {Level: -1}} {
		require.Panics(t, func() { cas.WithCompression(p) }, "%+v", p)
	}
}

// FuzzCompressedObject reads arbitrary stored bytes as a compressed blob
// (the seek table and frame parser): no panic, and either an error
// wrapping a cas sentinel or exactly the bytes a plain zstd decoder gets
// from the same frames.
func FuzzCompressedObject(f *testing.F) {
	data := testutil.Text(10, 3*64<<10+100)
	_, _, stored := compressed(f, data)
	f.Add(stored, int64(len(data)))
	for _, bad := range hostileStored(stored) {
		f.Add(bad, int64(len(data)))
	}
	f.Fuzz(func(t *testing.T, stored []byte, size int64) {
		if size < 0 || size > 64<<20 {
			return
		}
		ctx := context.Background()
		n, derr := cas.DecodedSize(cas.EncodingZstd, bytes.NewReader(stored), int64(len(stored)))
		if derr != nil {
			require.ErrorIs(t, derr, cas.ErrCorrupt)
		}
		b := memstore.New()
		key := cas.SumBytes(stored).Key()
		require.NoError(t, b.Put(ctx, key, bytes.NewReader(stored), int64(len(stored)), cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: size}))
		obj, err := cas.New(b).Open(ctx, cas.SumBytes(stored))
		require.NoError(t, err)
		defer obj.Close()
		got, err := io.ReadAll(obj)
		if err != nil {
			require.ErrorIs(t, err, cas.ErrCorrupt)
			return
		}
		require.NoError(t, derr)
		require.Equal(t, n, size)
		require.EqualValues(t, size, len(got))
	})
}

// TestCompressionHashesOnce: a Put that compresses hashes each byte of the
// blob exactly once, on a staging and on a spooling backend, for one chunk
// and for many (spooled to a file).
func TestCompressionHashesOnce(t *testing.T) {
	t.Parallel()
	for _, bc := range []backendtest.Case{backendtest.Mem(), backendtest.FS()} {
		for _, size := range []int{20 << 10, 700 << 10} {
			t.Run(bc.Name, func(t *testing.T) {
				t.Parallel()
				b := bc.New(t)
				s := cas.New(b, cas.WithCompression(smallChunks), cas.WithSpoolThreshold(64<<10), cas.WithTempDir(t.TempDir()))
				var hashed atomic.Int64
				cas.SetNewHash(s, func() hash.Hash { return countingHash{sha256.New(), &hashed} })
				data := testutil.Text(11, size)
				res, err := s.Put(t.Context(), bytes.NewReader(data))
				require.NoError(t, err)
				require.EqualValues(t, size, hashed.Load())
				info, err := s.Stat(t.Context(), res.Hash)
				require.NoError(t, err)
				require.Equal(t, cas.EncodingZstd, info.Encoding)
			})
		}
	}
}

// TestCompressionCorruptFile: on fsstore, a damaged .zst file fails Stat,
// Open and Verify with ErrCorrupt (Verify's also ErrDigestMismatch), and
// List still lists it (Size -1) without stopping.
func TestCompressionCorruptFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := fsstore.New(dir, fsstore.WithoutSync())
	require.NoError(t, err)
	s := cas.New(b, cas.WithCompression(smallChunks))
	data := testutil.Text(12, 300<<10)
	res, err := s.Put(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	hex := res.Hash.String()
	path := filepath.Join(dir, "cas", hex[:2], hex+".zst")
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.Truncate(path, 1000))
	_, err = s.Stat(t.Context(), res.Hash)
	require.ErrorIs(t, err, cas.ErrCorrupt)
	err = s.Verify(t.Context(), res.Hash)
	require.ErrorIs(t, err, cas.ErrCorrupt)
	require.ErrorIs(t, err, cas.ErrDigestMismatch)
	var infos []cas.Info
	for info, err := range s.Walk(t.Context()) {
		require.NoError(t, err)
		infos = append(infos, info)
	}
	require.Len(t, infos, 1)
	require.EqualValues(t, -1, infos[0].Size)
	require.NoError(t, s.Delete(t.Context(), res.Hash))
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}
