//go:build cgo && casa_libzstd

package libzstd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/libzstd"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
)

// TestFrames: at every level each call appends one standard zstd frame
// with its content size and checksum, which klauspost's decoder reads back
// to the same bytes; a damaged frame fails to decode (never other bytes).
func TestFrames(t *testing.T) {
	t.Logf("libzstd %s", libzstd.Version)
	dec, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer dec.Close()
	for level := 1; level <= 4; level++ {
		enc, err := libzstd.New(level)
		require.NoError(t, err)
		for _, n := range []int{0, 1, 100, 64 << 10, 1 << 20} {
			src := testutil.Text(uint64(n), n)
			frame := enc.EncodeAll(src, []byte("kept"))
			require.Equal(t, []byte("kept"), frame[:4], "EncodeAll appends to dst")
			frame = frame[4:]
			var h zstd.Header
			require.NoError(t, h.Decode(frame))
			require.True(t, h.HasCheckSum, "level %d, %d bytes: frame checksum", level, n)
			require.True(t, h.HasFCS, "level %d, %d bytes: frame content size", level, n)
			require.EqualValues(t, n, h.FrameContentSize)
			got, err := dec.DecodeAll(frame, nil)
			require.NoError(t, err)
			require.True(t, bytes.Equal(src, got), "level %d, %d bytes round trip", level, n)
			if n >= 64<<10 {
				for _, at := range []int{len(frame) / 3, len(frame) / 2, len(frame) - 6} {
					bad := bytes.Clone(frame)
					bad[at] ^= 0x55
					out, err := dec.DecodeAll(bad, nil)
					if err == nil {
						require.True(t, bytes.Equal(src, out), "a damaged frame decoded without error must not yield other bytes")
					}
				}
			}
		}
	}
	for _, level := range []int{0, 5, -1} {
		_, err := libzstd.New(level)
		require.ErrorIs(t, err, libzstd.ErrLevel)
	}
}

// TestStore: a Store whose policy has the libzstd Encoder stores text
// compressed on every backend, reads it back whole and in ranges, Verify
// passes, and frames from many concurrent Puts are sound (race detector).
func TestStore(t *testing.T) {
	enc, err := libzstd.New(1)
	require.NoError(t, err)
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		s := cas.New(bc.New(t), cas.WithCompression(cas.Compression{ChunkSize: 64 << 10, Encoder: enc}), cas.WithTempDir(t.TempDir()))
		var wg sync.WaitGroup
		hashes := make([]cas.Hash, 6)
		data := make([][]byte, len(hashes))
		errs := make([]error, len(hashes))
		for i := range hashes {
			data[i] = testutil.Text(uint64(i), 300<<10+i*1000)
			wg.Go(func() {
				var res cas.PutResult
				res, errs[i] = s.Put(t.Context(), bytes.NewReader(data[i]))
				hashes[i] = res.Hash
			})
		}
		wg.Wait()
		for i, h := range hashes {
			require.NoError(t, errs[i])
			info, err := s.Stat(t.Context(), h)
			require.NoError(t, err)
			require.Equal(t, cas.EncodingZstd, info.Encoding)
			require.Less(t, info.StoredSize, info.Size/2)
			require.NoError(t, s.Verify(t.Context(), h))
			r, err := s.Open(t.Context(), h)
			require.NoError(t, err)
			_, err = r.Seek(200<<10, io.SeekStart)
			require.NoError(t, err)
			part := make([]byte, 1000)
			_, err = io.ReadFull(r, part)
			require.NoError(t, err)
			require.NoError(t, r.Close())
			require.Equal(t, data[i][200<<10:200<<10+1000], part)
		}
	})
}

func Example() {
	enc, err := libzstd.New(1)
	if err != nil {
		panic(err)
	}
	store := cas.New(memstore.New(), cas.WithCompression(cas.Compression{Encoder: enc}))
	text := bytes.Repeat([]byte("R1,10k,0603,Yageo\n"), 10000)
	res, err := store.Put(context.Background(), bytes.NewReader(text))
	if err != nil {
		panic(err)
	}
	info, err := store.Stat(context.Background(), res.Hash)
	if err != nil {
		panic(err)
	}
	fmt.Println(info.Encoding, info.Size, info.StoredSize < info.Size/10)
	// Output: zstd 180000 true
}

// BenchmarkPut is a 64 MiB Put of text on fsstore through a Store whose
// policy has the libzstd Encoder (cas's BenchmarkPutCompressed is the same
// with klauspost's).
func BenchmarkPut(b *testing.B) {
	enc, err := libzstd.New(1)
	require.NoError(b, err)
	s := cas.New(backendtest.FS().New(b), cas.WithCompression(cas.Compression{Encoder: enc}))
	data := testutil.Text(2, 64<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(data, uint64(i))
		res, err := s.Put(context.Background(), bytes.NewReader(data))
		require.NoError(b, err)
		b.StopTimer()
		require.False(b, res.Deduplicated)
		require.NoError(b, s.Delete(context.Background(), res.Hash))
		b.StartTimer()
	}
}
