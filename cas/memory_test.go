package cas_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// heapSampler records the peak of the live heap while it runs.
type heapSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak atomic.Uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.done.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := heapNow(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	})
	return h
}

// Stop stops sampling and returns the peak, including one last sample
// taken now (the sampling goroutine may have been starved of CPU).
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	return max(h.peak.Load(), heapNow())
}

// blockReader generates n bytes cheaply, as they are read: a fixed
// pseudo-random 64 KiB block repeated, with the block number in its first
// 8 bytes so that no two blocks are equal. It is no Seeker and holds no more
// than the one block.
type blockReader struct {
	block []byte
	off   int64 // bytes delivered
	n     int64
}

func newBlockReader(n int64) *blockReader {
	return &blockReader{block: testutil.Bytes(99, 64<<10), n: n}
}

func (r *blockReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	bs := int64(len(r.block))
	i := r.off % bs
	if i == 0 {
		binary.LittleEndian.PutUint64(r.block, uint64(r.off/bs))
	}
	m := copy(p, r.block[i:min(bs, i+r.n-r.off)])
	r.off += int64(m)
	return m, nil
}

// TestPutMemoryFlat stores a 1 GiB blob, generated as it is read, into
// fsstore (staged; and 256 MiB spooled), and checks that the heap does not grow with
// the blob. It is not parallel, so that no other test allocates while it
// measures.
func TestPutMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1.25 GiB to disk; skipped with -short")
	}
	const limit = 16 << 20

	t.Run("sampler", func(t *testing.T) {
		// The harness can fail: it sees a blob held in memory.
		runtime.GC()
		base := heapNow()
		sampler := startHeapSampler()
		buf := make([]byte, 2*limit)
		for i := range buf {
			buf[i] = byte(i)
		}
		peak := sampler.Stop()
		runtime.KeepAlive(buf)
		require.GreaterOrEqual(t, int64(peak)-int64(base), int64(2*limit))
	})

	for _, staged := range []bool{true, false} {
		name := map[bool]string{true: "staged", false: "spooled"}[staged]
		// 1 GiB through fsstore's staging; the spooled path writes every
		// byte twice (spool file, then fsstore), so it gets 256 MiB.
		size := int64(1 << 30)
		if !staged {
			size = 256 << 20
		}
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			// fsync would only slow the test down: memory does not depend on it.
			fsb, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
			require.NoError(t, err)
			var b cas.Backend = fsb
			if !staged {
				// The wrapper hides cas.Stager: Put spools to WithTempDir.
				b = faulty.New(fsb)
			}
			_, isStager := b.(cas.Stager)
			require.Equal(t, staged, isStager)
			spool := t.TempDir()
			s := cas.New(b, cas.WithTempDir(spool))

			// The test hashes what it hands to Put on the way.
			d := sha256.New()
			src := io.TeeReader(newBlockReader(size), d)

			runtime.GC()
			base := heapNow()
			sampler := startHeapSampler()
			res, err := s.Put(ctx, src)
			peak := sampler.Stop()
			require.NoError(t, err)
			require.Equal(t, size, res.Size)
			require.Equal(t, cas.Hash(d.Sum(nil)), res.Hash)
			info, err := s.Stat(ctx, res.Hash)
			require.NoError(t, err)
			require.Equal(t, size, info.Size)
			requireNoFiles(t, spool, filepath.Join(fsb.Dir(), ".tmp"))

			growth := int64(peak) - int64(base)
			t.Logf("heap: base %d KiB, peak %d KiB, growth %d KiB during a %d MiB Put", base>>10, peak>>10, growth>>10, size>>20)
			require.Less(t, growth, int64(limit), "heap grew by %d bytes during a %d-byte Put", growth, size)
		})
	}
}

// allocatedPerPut returns the bytes the process allocated per Put of
// data through s, over 20 Puts that each store a new blob (the first 8
// bytes of data count the Puts), after one that fills the Store's pools.
// check runs after each Put.
func allocatedPerPut(t *testing.T, s *cas.Store, data []byte, check func(cas.PutResult)) uint64 {
	t.Helper()
	put := func(i int) {
		binary.LittleEndian.PutUint64(data, uint64(i))
		res, err := s.Put(t.Context(), bytes.NewReader(data))
		require.NoError(t, err)
		require.False(t, res.Deduplicated)
		check(res)
	}
	put(0) // fills the pool
	const puts = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 1; i <= puts; i++ {
		put(i)
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / puts
}

// TestPutReusesBuffers: the Puts of a Store share their pipeline's
// buffers, so that a run of 1 MiB Puts over a Stager (fsstore) does not
// allocate up to 8 fresh 256 KiB buffers each. Not parallel: it counts the
// process's allocations. (Under -race sync.Pool drops some of what it is
// given, hence the margin: without reuse a Put allocates 4 buffers.)
func TestPutReusesBuffers(t *testing.T) {
	b, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	perPut := allocatedPerPut(t, cas.New(b), testutil.Bytes(7, 1<<20), func(cas.PutResult) {})
	t.Logf("%d KiB allocated per 1 MiB Put", perPut>>10)
	require.Less(t, perPut, uint64(512<<10), "allocated per 1 MiB Put")
}

// TestCompressionReusesBuffers: a compressed Put takes its chunk buffers
// (the chunk read and its frame) from the Store's pool, so a Store's Puts
// share them instead of allocating a chunk and a frame per chunk in flight.
// Not parallel: it counts the process's allocations.
func TestCompressionReusesBuffers(t *testing.T) {
	b, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	s := cas.New(b, cas.WithCompression(cas.Compression{}))
	perPut := allocatedPerPut(t, s, testutil.Text(7, 3<<20), func(res cas.PutResult) {
		info, err := s.Stat(t.Context(), res.Hash)
		require.NoError(t, err)
		require.Equal(t, cas.EncodingZstd, info.Encoding)
	})
	t.Logf("%d KiB allocated per 3 MiB compressed Put", perPut>>10)
	// Without the pool about 6 MiB (3 chunks and their frames per Put);
	// with it about 0.3 MiB, and 1.5 to 2.5 MiB under the race detector,
	// whose sync.Pool drops a quarter of what it is given.
	limit := uint64(1 << 20)
	if raceEnabled {
		limit = 4 << 20
	}
	require.Less(t, perPut, limit, "allocated per 3 MiB compressed Put (3 chunks of 1 MiB in flight)")
}
