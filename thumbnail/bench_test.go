package thumbnail_test

import (
	"bytes"
	"image/jpeg"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/thumbnail"
)

// photo12MP returns a 4000 x 3000 photo-like JPEG. Benchmarks generate it
// in each run (about a second) rather than keep it in package state.
func photo12MP(b *testing.B) []byte {
	b.Helper()
	return testutil.JPEG(4000, 3000)
}

// heapPeak samples the live heap while it runs and reports the peak above
// the level at start, in MiB, as "peak-heap-MiB".
type heapPeak struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapPeak{base: ms.HeapAlloc, stop: make(chan struct{})}
	h.wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > h.peak.Load() {
				h.peak.Store(ms.HeapAlloc)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
	return h
}

func (h *heapPeak) report(b *testing.B) {
	close(h.stop)
	h.wg.Wait()
	p := h.peak.Load()
	if p < h.base {
		p = h.base
	}
	b.ReportMetric(float64(p-h.base)/(1<<20), "peak-heap-MiB")
}

// BenchmarkDecode12MP is the floor: image/jpeg.Decode of the 12 MP JPEG.
func BenchmarkDecode12MP(b *testing.B) {
	src := photo12MP(b)
	b.ReportAllocs()
	h := startHeapPeak()
	b.ResetTimer()
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	h.report(b)
}

// BenchmarkThumbnail12MP times Generate on the 12 MP JPEG and, in the same
// iterations (timer stopped), image/jpeg.Decode of it: ns/op is the
// thumbnail alone, "ratio" is thumbnail time over decode-only time (the
// target is <= 1.3).
func BenchmarkThumbnail12MP(b *testing.B) {
	src := photo12MP(b)
	for _, size := range []int{150, 1000} {
		b.Run("size="+itoa(size), func(b *testing.B) {
			var dec, gen time.Duration
			b.ReportAllocs()
			h := startHeapPeak()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				t0 := time.Now()
				if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
					b.Fatal(err)
				}
				dec += time.Since(t0)
				b.StartTimer()
				t1 := time.Now()
				if _, err := thumbnail.Generate(bytes.NewReader(src), size); err != nil {
					b.Fatal(err)
				}
				gen += time.Since(t1)
			}
			b.StopTimer()
			h.report(b)
			b.ReportMetric(float64(dec.Milliseconds())/float64(b.N), "decode-ms/op")
			b.ReportMetric(float64(gen.Milliseconds())/float64(b.N), "thumb-ms/op")
			b.ReportMetric(float64(gen)/float64(dec), "ratio")
		})
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
