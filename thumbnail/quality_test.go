package thumbnail_test

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// fullDecode makes Generate decode JPEGs with image/jpeg at full size:
// the reference path (shrink-on-load off).
var fullDecode = thumbnail.WithDecoder(func(format string, r io.Reader) (image.Image, error) {
	if format != "jpeg" {
		return nil, fmt.Errorf("fullDecode: %s", format)
	}
	return jpeg.Decode(r)
})

// psnr is the peak signal-to-noise ratio of b against a over R, G and B,
// in dB (+Inf when equal). The images must have the same bounds.
func psnr(t *testing.T, a, b image.Image) float64 {
	t.Helper()
	require.Equal(t, a.Bounds(), b.Bounds())
	var sum float64
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, _ := a.At(x, y).RGBA()
			br, bg, bb, _ := b.At(x, y).RGBA()
			for _, d := range []float64{float64(ar>>8) - float64(br>>8), float64(ag>>8) - float64(bg>>8), float64(ab>>8) - float64(bb>>8)} {
				sum += d * d
			}
		}
	}
	mse := sum / float64(3*r.Dx()*r.Dy())
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// TestShrinkOnLoadQuality: every thumbnail made with shrink-on-load (at
// 1/2, 1/4 and 1/8) is within 35 dB PSNR of the one image/jpeg and the
// resize make from the full-size image, with the same dimensions.
func TestShrinkOnLoadQuality(t *testing.T) {
	t.Parallel()
	type fixture struct {
		name  string
		data  []byte
		sizes []int
	}
	fixtures := []fixture{
		{"photo 1600x1200 4:2:0", imagetest.JPEG(1600, 1200), []int{150, 300, 600, 200, 401}},
		{"photo 1001x777 4:2:0", imagetest.JPEG(1001, 777), []int{120, 250, 500}},
		{"quadrants 800x600 orientation 6", imagetest.JPEGWithOrientation(800, 600, 6), []int{100, 200, 400}},
		{"quadrants 640x480 orientation 5", imagetest.JPEGWithOrientation(640, 480, 5), []int{80, 150}},
	}
	files, err := filepath.Glob("../internal/jpegdec/testdata/301_*.jpg")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		fixtures = append(fixtures, fixture{filepath.Base(f), b, []int{37, 75, 150}})
	}
	worst := math.Inf(1)
	for _, fx := range fixtures {
		for _, size := range fx.sizes {
			got, err := thumbnail.Generate(bytes.NewReader(fx.data), size)
			require.NoError(t, err, "%s at %d", fx.name, size)
			want, err := thumbnail.Generate(bytes.NewReader(fx.data), size, fullDecode)
			if strings.HasSuffix(fx.name, "_prog_rst.jpg") {
				// image/jpeg fails cjpeg's progressive files with restart
				// markers: shrink-on-load makes thumbnails of them.
				require.ErrorIs(t, err, thumbnail.ErrCorrupt)
				continue
			}
			require.NoError(t, err, "%s at %d", fx.name, size)
			gm, wm := decodeJPEG(t, got), decodeJPEG(t, want)
			require.Equal(t, wm.Bounds(), gm.Bounds(), "%s at %d", fx.name, size)
			p := psnr(t, wm, gm)
			worst = min(worst, p)
			require.GreaterOrEqual(t, p, 35.0, "%s at %d", fx.name, size)
		}
	}
	t.Logf("lowest PSNR %.1f dB", worst)
}

// TestShrinkOnLoadFallsBack: JPEGs jpegdec does not decode (CMYK here)
// still make thumbnails, through image/jpeg; those image/jpeg rejects too
// stay ErrUnsupported.
func TestShrinkOnLoadFallsBack(t *testing.T) {
	t.Parallel()
	cmyk := imagetest.ProgressiveJPEG(800, 600, imagetest.LayoutCMYK, 4, false)
	out, err := thumbnail.Generate(bytes.NewReader(cmyk), 100)
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 100, 75), decodeJPEG(t, out).Bounds())

	sof1 := bytes.Replace(imagetest.JPEG(800, 600), []byte{0xff, 0xc0}, []byte{0xff, 0xc1}, 1)
	out, err = thumbnail.Generate(bytes.NewReader(sof1), 100)
	require.NoError(t, err, "SOF1 (extended sequential, 8-bit) goes to image/jpeg")
	require.Equal(t, image.Rect(0, 0, 100, 75), decodeJPEG(t, out).Bounds())

	arith := bytes.Replace(imagetest.JPEG(800, 600), []byte{0xff, 0xc0}, []byte{0xff, 0xc9}, 1)
	_, err = thumbnail.Generate(bytes.NewReader(arith), 100)
	require.ErrorIs(t, err, thumbnail.ErrUnsupported)
}
