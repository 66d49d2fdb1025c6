package thumbnail_test

import (
	"bytes"
	"context"

	"image"
	"image/gif"
	"image/png"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// allocated returns the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestProgressiveBombsRefusedBeforeAllocating: the hand-built progressive
// JPEGs of the hardening issue claim 7000x7000 in a few hundred bytes.
// Within the pixel limit, they would make image/jpeg allocate 0.7 to 1.1
// GiB (coefficients for every block of every component, on top of the
// image); they are refused from the header with ErrTooLarge, allocating
// next to nothing. Not parallel: it measures the process's allocations.
func TestProgressiveBombsRefusedBeforeAllocating(t *testing.T) {
	bombs := map[string][]byte{
		"cmyk":                  imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutCMYK, 4, false),
		"cmyk truncated":        imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutCMYK, 4, true),
		"ycbcr 4:4:4":           imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutYCbCr444, 3, false),
		"png 16-bit interlaced": imagetest.PNGInterlaced16(7000, 7000),
	}
	for name, b := range bombs {
		require.Less(t, len(b), 1000, name)
		var err error
		// 4000 px: over half the image, so no shrink-on-load.
		n := allocated(func() { _, err = thumbnail.Generate(bytes.NewReader(b), 4000) })
		require.ErrorIs(t, err, thumbnail.ErrTooLarge, name)
		require.Less(t, n, uint64(1<<20), "%s: allocated %d bytes while refusing", name, n)
	}
	// A 150 px thumbnail of the 4:4:4 one decodes at 1/8, keeping only the
	// DC coefficients (2 bytes a block): it is made, in bounded memory.
	b := bombs["ycbcr 4:4:4"]
	need, err := thumbnail.Estimate(bytes.NewReader(b), 150)
	require.NoError(t, err)
	require.Less(t, need, int64(32<<20))
	runtime.GC()
	n := allocated(func() { _, err = thumbnail.Generate(bytes.NewReader(b), 150) })
	require.NoError(t, err)
	require.LessOrEqual(t, n, uint64(need), "allocated more than the estimate")
	// The memory check refuses the 16-bit PNG even with the pixel limit
	// raised out of the way.
	_, err = thumbnail.Generate(bytes.NewReader(imagetest.PNGInterlaced16(7000, 7000)), 150, thumbnail.WithMaxPixels(1<<40))
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	require.ErrorContains(t, err, "needs about")
}

// TestMemoryLimitOption: the per-generation limit applies below the pixel
// limit, names what the image needs, and can be raised.
func TestMemoryLimitOption(t *testing.T) {
	t.Parallel()
	prog := imagetest.ProgressiveJPEG(1000, 1000, imagetest.LayoutYCbCr420, 3, false)
	need, err := thumbnail.Estimate(bytes.NewReader(prog), 100)
	require.NoError(t, err)
	_, err = thumbnail.Generate(bytes.NewReader(prog), 100, thumbnail.WithMaxMemory(need-1))
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	require.ErrorContains(t, err, "progressive jpeg with 3 components")
	out, err := thumbnail.Generate(bytes.NewReader(prog), 100, thumbnail.WithMaxMemory(need))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 100, 100), decodeJPEG(t, out).Bounds())
}

// TestMemoryEstimateCoversAllocation checks the estimate against what a
// generation really allocates, for every decoder path: it must never be
// below, and not wildly above (which would refuse good images). Not
// parallel: it measures the process's allocations.
func TestMemoryEstimateCoversAllocation(t *testing.T) {
	enc := func(m image.Image) []byte {
		var b bytes.Buffer
		require.NoError(t, png.Encode(&b, m))
		return b.Bytes()
	}
	var gifBuf bytes.Buffer
	require.NoError(t, gif.Encode(&gifBuf, imagetest.Quadrants(900, 700), nil))
	tests := []struct {
		name string
		src  []byte
		size int // 150 when 0
	}{
		// At 150 px, 1600x1200 JPEGs are shrunk on load by jpegdec (1/8);
		// at 1000 they are decoded in full by image/jpeg; 500 is 1/2, 250 1/4.
		{"baseline jpeg 4:2:0", imagetest.JPEG(1600, 1200), 0},
		{"baseline jpeg 4:2:0 at 1/2", imagetest.JPEG(1600, 1200), 500},
		{"baseline jpeg 4:2:0 at 1/4", imagetest.JPEG(1600, 1200), 250},
		{"baseline jpeg 4:2:0 at 1/1", imagetest.JPEG(1600, 1200), 1000},
		{"progressive gray", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutGray, 6, false), 0},
		{"progressive gray at 1/2", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutGray, 6, false), 500},
		{"progressive 4:2:0", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutYCbCr420, 10, false), 0},
		{"progressive 4:2:0 at 1/4", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutYCbCr420, 10, false), 250},
		{"progressive 4:2:0 at 1/1", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutYCbCr420, 10, false), 1000},
		{"progressive 4:4:4", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutYCbCr444, 10, false), 0},
		{"progressive 4:4:4 at 1/2", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutYCbCr444, 10, false), 500},
		{"progressive 4:4:4 at 1/1", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutYCbCr444, 10, false), 1000},
		{"progressive cmyk", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutCMYK, 8, false), 0},
		{"truncated progressive cmyk", imagetest.ProgressiveJPEG(1600, 1200, imagetest.LayoutCMYK, 4, true), 0},
		{"png rgba", imagetest.PNG(1600, 1200), 0},
		{"png 16-bit", enc(image.NewNRGBA64(image.Rect(0, 0, 1200, 900))), 0},
		{"png 16-bit interlaced", imagetest.PNGInterlaced16(1200, 900), 0},
		{"gif", gifBuf.Bytes(), 0},
		{"webp lossless", imagetest.WebP(1600, 1200, imagetest.Red), 0},
	}
	for _, tt := range tests {
		size := tt.size
		if size == 0 {
			size = 150
		}
		need, err := thumbnail.Estimate(bytes.NewReader(tt.src), size)
		require.NoError(t, err, tt.name)
		runtime.GC()
		n := allocated(func() { _, _ = thumbnail.Generate(bytes.NewReader(tt.src), size) })
		t.Logf("%-28s estimate %7.1f MiB, allocated %7.1f MiB", tt.name, float64(need)/(1<<20), float64(n)/(1<<20))
		require.GreaterOrEqual(t, need, int64(n), "%s: estimate below the allocation", tt.name)
		require.Less(t, need, 3*int64(n)+4<<20, "%s: estimate far above the allocation", tt.name)
	}
}

// TestJPEGScanLimit: a progressive JPEG with up to MaxJPEGScans scans
// decodes; one more is refused with ErrTooLarge; the 2000-scan CPU bomb
// of the hardening issue is refused after doing at most MaxJPEGScans
// scans' work.
func TestJPEGScanLimit(t *testing.T) {
	t.Parallel()
	at := imagetest.ProgressiveJPEG(64, 48, imagetest.LayoutYCbCr420, thumbnail.MaxJPEGScans, false)
	out, err := thumbnail.Generate(bytes.NewReader(at), 32)
	require.NoError(t, err)
	require.Equal(t, 32, decodeJPEG(t, out).Bounds().Dx())

	over := imagetest.ProgressiveJPEG(64, 48, imagetest.LayoutYCbCr420, thumbnail.MaxJPEGScans+1, false)
	_, err = thumbnail.Generate(bytes.NewReader(over), 32)
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	require.ErrorContains(t, err, "scans")

	// Read a byte at a time, the count is the same.
	_, err = thumbnail.Generate(iotest.OneByteReader(bytes.NewReader(over)), 32)
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	_, err = thumbnail.Generate(iotest.OneByteReader(bytes.NewReader(at)), 32)
	require.NoError(t, err)

	// 2000 scans over 2000x2000 pixels: 62,500 blocks walked per scan.
	bomb := imagetest.ProgressiveJPEG(2000, 2000, imagetest.LayoutGray, 2000, false)
	cpu := cpuTime()
	_, err = thumbnail.Generate(bytes.NewReader(bomb), 150)
	used := cpuTime() - cpu
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	require.NotErrorIs(t, err, thumbnail.ErrCorrupt)
	t.Logf("2000-scan bomb refused after %v of CPU", used)
}

// TestGenerateDeadline: a generation past its deadline stops at its next
// read, even inside a JPEG whose scans are a few bytes each, and fails
// with ErrTimeout (not ErrCorrupt). The same file decodes without the
// short deadline.
func TestGenerateDeadline(t *testing.T) {
	t.Parallel()
	// 90 scans (under the limit) of 250,000 blocks each: seconds of work
	// in a few KB.
	// At 2500 px image/jpeg decodes it; at 1500 jpegdec, at 1/2.
	slow := imagetest.ProgressiveJPEG(4000, 4000, imagetest.LayoutGray, 90, false)
	for _, size := range []int{2500, 1500} {
		start := time.Now()
		_, err := thumbnail.Generate(bytes.NewReader(slow), size, thumbnail.WithTimeout(20*time.Millisecond))
		took := time.Since(start)
		require.ErrorIs(t, err, thumbnail.ErrTimeout, "size %d", size)
		require.NotErrorIs(t, err, thumbnail.ErrCorrupt)
		require.NotErrorIs(t, err, thumbnail.ErrTooLarge)
		t.Logf("size %d: stopped after %v", size, took)
	}

	// A cancelled context is the caller's cause, not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := thumbnail.GenerateContext(ctx, bytes.NewReader(imagetest.JPEG(64, 48)), 32)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, thumbnail.ErrTimeout)
	require.NotErrorIs(t, err, thumbnail.ErrCorrupt)
}

// TestGenerateDeadlineStopsSlowSource: a source that trickles is cut off
// at the deadline.
func TestGenerateDeadlineStopsSlowSource(t *testing.T) {
	t.Parallel()
	src := &trickle{r: bytes.NewReader(imagetest.PNG(400, 300)), delay: 20 * time.Millisecond}
	_, err := thumbnail.Generate(src, 100, thumbnail.WithTimeout(100*time.Millisecond))
	require.ErrorIs(t, err, thumbnail.ErrTimeout)
}

// trickle returns 16 bytes a read, after a delay.
type trickle struct {
	r     io.Reader
	delay time.Duration
}

func (t *trickle) Read(p []byte) (int, error) {
	time.Sleep(t.delay)
	return t.r.Read(p[:min(len(p), 16)])
}
