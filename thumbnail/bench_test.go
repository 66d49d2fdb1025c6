package thumbnail_test

import (
	"bytes"
	"image/jpeg"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// The benchmarks use a 4000 x 3000 photo-like JPEG (imagetest.JPEG),
// generated in each run (about a second) rather than kept in package
// state.
//
//	go test -run '^$' -bench 12MP -benchtime 20x ./thumbnail/

// peakHeap runs f once and returns the peak of the heap (live and not yet
// collected objects) above the level before it, in MiB, sampled every
// 200µs through runtime/metrics (which does not stop the world).
func peakHeap(f func()) float64 {
	runtime.GC()
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { rtmetrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	peak := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			peak = max(peak, read())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	peak = max(peak, read())
	return float64(peak-base) / (1 << 20)
}

// BenchmarkDecode12MP is the floor: image/jpeg.Decode of the 12 MP JPEG.
func BenchmarkDecode12MP(b *testing.B) {
	src := imagetest.JPEG(4000, 3000)
	decode := func() {
		if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		decode()
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.StopTimer()
	b.ReportMetric(peakHeap(decode), "peak-heap-MiB")
}

// BenchmarkThumbnail12MP times Generate on the 12 MP JPEG and, in the same
// iterations with the timer stopped, image/jpeg.Decode of it, so that both
// see the same machine load. ns/op is the thumbnail alone. "ratio" is
// thumbnail over decode-only wall time, "cpu-ratio" the same in process
// CPU time (which counts the work imaging spreads over several cores);
// the target is <= 1.3.
func BenchmarkThumbnail12MP(b *testing.B) {
	src := imagetest.JPEG(4000, 3000)
	for _, size := range []int{150, 300, 800, 1000} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			gen := func() {
				if _, err := thumbnail.Generate(bytes.NewReader(src), size); err != nil {
					b.Fatal(err)
				}
			}
			var decWall, genWall, decCPU, genCPU time.Duration
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				w0, c0 := time.Now(), cpuTime()
				if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
					b.Fatal(err)
				}
				w1, c1 := time.Now(), cpuTime()
				b.StartTimer()
				gen()
				genWall += time.Since(w1)
				genCPU += cpuTime() - c1
				decWall += w1.Sub(w0)
				decCPU += c1 - c0
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(decWall.Microseconds())/1000/n, "decode-ms/op")
			b.ReportMetric(float64(genWall.Microseconds())/1000/n, "thumb-ms/op")
			b.ReportMetric(float64(genWall)/float64(decWall), "ratio")
			if decCPU > 0 {
				b.ReportMetric(float64(genCPU)/float64(decCPU), "cpu-ratio")
			}
			b.ReportMetric(peakHeap(gen), "peak-heap-MiB")
		})
	}
}
