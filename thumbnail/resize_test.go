package thumbnail

import (
	"bytes"
	"image/jpeg"
	"io"

	"fmt"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/disintegration/imaging"
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFit(t *testing.T) {
	t.Parallel()
	tests := []struct{ w, h, size, ww, wh int }{
		{4000, 3000, 150, 150, 113},
		{3000, 4000, 150, 113, 150},
		{100, 50, 150, 100, 50}, // never upscaled
		{150, 150, 150, 150, 150},
		{151, 150, 150, 150, 149},
		{1, 1000, 150, 1, 150},  // at least one pixel
		{10000, 1, 100, 100, 1}, // rounds 0.01 up to 1
		{1000, 1000, 1, 1, 1},
		{65535, 65535, 1000, 1000, 1000},
	}
	for _, tt := range tests {
		w, h := fit(tt.w, tt.h, tt.size)
		require.Equal(t, [2]int{tt.ww, tt.wh}, [2]int{w, h}, "%dx%d in %d", tt.w, tt.h, tt.size)
	}
}

// naiveBox averages the YCbCr samples under each f x f block through the
// image's own YCbCrAt (chroma weighted per luma pixel), the reference the
// fast path is compared against.
func naiveBox(m *image.YCbCr, f int) *image.NRGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, (w+f-1)/f, (h+f-1)/f))
	for oy := 0; oy < out.Rect.Dy(); oy++ {
		for ox := 0; ox < out.Rect.Dx(); ox++ {
			var sy, n int
			for y := oy * f; y < min(oy*f+f, h); y++ {
				for x := ox * f; x < min(ox*f+f, w); x++ {
					sy += int(m.Y[m.YOffset(x, y)])
					n++
				}
			}
			// Chroma: average of the distinct chroma samples covered.
			seen := map[int]bool{}
			var sb, sr int
			for y := oy * f; y < min(oy*f+f, h); y++ {
				for x := ox * f; x < min(ox*f+f, w); x++ {
					i := m.COffset(x, y)
					if !seen[i] {
						seen[i] = true
						sb += int(m.Cb[i])
						sr += int(m.Cr[i])
					}
				}
			}
			c := len(seen)
			r, g, b := color.YCbCrToRGB(uint8((sy+n/2)/n), uint8((sb+c/2)/c), uint8((sr+c/2)/c))
			out.SetNRGBA(ox, oy, color.NRGBA{r, g, b, 255})
		}
	}
	return out
}

func TestBoxYCbCrMatchesReference(t *testing.T) {
	t.Parallel()
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	var seed uint64
	for _, r := range ratios {
		for _, dims := range [][3]int{{37, 23, 2}, {40, 40, 4}, {41, 17, 3}, {9, 9, 13}, {64, 48, 5}} {
			t.Run(fmt.Sprintf("%v/%dx%d/f%d", r, dims[0], dims[1], dims[2]), func(t *testing.T) {
				m := image.NewYCbCr(image.Rect(0, 0, dims[0], dims[1]), r)
				seed++
				copy(m.Y, testutil.Bytes(3*seed, len(m.Y)))
				copy(m.Cb, testutil.Bytes(3*seed+1, len(m.Cb)))
				copy(m.Cr, testutil.Bytes(3*seed+2, len(m.Cr)))
				got := boxYCbCr(m, dims[2])
				want := naiveBox(m, dims[2])
				require.Equal(t, want.Rect, got.Rect)
				require.Equal(t, want.Pix, got.Pix)
			})
		}
	}
}

func TestFlatten(t *testing.T) {
	t.Parallel()
	m := image.NewNRGBA(image.Rect(0, 0, 4, 1))
	m.SetNRGBA(0, 0, color.NRGBA{0, 0, 0, 0})       // transparent: white
	m.SetNRGBA(1, 0, color.NRGBA{200, 10, 10, 255}) // opaque: unchanged
	m.SetNRGBA(2, 0, color.NRGBA{0, 0, 0, 128})     // half black: mid grey
	m.SetNRGBA(3, 0, color.NRGBA{255, 0, 0, 51})    // 20% red
	got := flatten(m)
	require.Equal(t, []uint8{
		255, 255, 255, 255,
		200, 10, 10, 255,
		127, 127, 127, 255,
		255, 204, 204, 255,
	}, got.Pix)
}

// BenchmarkRender12MP times everything after decoding (pre-shrink, filter,
// flatten, encode) on a decoded 12 MP photo, split by stage.
func BenchmarkRender12MP(b *testing.B) {
	src, err := jpeg.Decode(bytes.NewReader(imagetest.JPEG(4000, 3000)))
	require.NoError(b, err)
	y := src.(*image.YCbCr)
	c := newConfig(nil)
	for _, size := range []int{150, 1000} {
		tw, th := fit(4000, 3000, size)
		f := shrinkFactor(4000, 3000, tw, th)
		b.Run(fmt.Sprintf("all/size=%d", size), func(b *testing.B) {
			for b.Loop() {
				_, err := c.render(src, 1, tw, th)
				require.NoError(b, err)
			}
		})
		b.Run(fmt.Sprintf("box/size=%d", size), func(b *testing.B) {
			for b.Loop() {
				boxYCbCr(y, f)
			}
		})
		small := boxYCbCr(y, f)
		b.Run(fmt.Sprintf("filter/size=%d", size), func(b *testing.B) {
			for b.Loop() {
				imaging.Resize(small, tw, th, imaging.CatmullRom)
			}
		})
		out := flatten(imaging.Resize(small, tw, th, imaging.CatmullRom))
		b.Run(fmt.Sprintf("encode/size=%d", size), func(b *testing.B) {
			for b.Loop() {
				require.NoError(b, jpeg.Encode(io.Discard, out, &jpeg.Options{Quality: 82}))
			}
		})
	}
}

func TestShrinkFactor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ w, h, tw, th, want int }{
		{4000, 3000, 1000, 750, 4}, // exact: the box average is the whole resize
		{4000, 3000, 2000, 1500, 2},
		{4000, 3000, 150, 113, 13}, // inexact: keep at least twice the target
		{4000, 3000, 999, 749, 2},
		{1000, 750, 1000, 750, 0}, // below 2: no pre-shrink
		{300, 300, 150, 150, 2},
		{301, 300, 150, 150, 1},
	} {
		require.Equal(t, tc.want, shrinkFactor(tc.w, tc.h, tc.tw, tc.th), "%+v", tc)
	}
}

// TestBoxYCbCrLargeFactor shrinks by a factor whose block sum overflows 32
// bits (255 * 4200 * 4200 > 2^32): a 4200 x 4200 white image at size 1
// (cashttp serves sizes from 1) must stay white.
func TestBoxYCbCrLargeFactor(t *testing.T) {
	t.Parallel()
	const n = 4200
	m := image.NewYCbCr(image.Rect(0, 0, n, n), image.YCbCrSubsampleRatio420)
	for i := range m.Y {
		m.Y[i] = 255
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = 128, 128
	}
	require.Equal(t, n, shrinkFactor(n, n, 1, 1))
	got := boxYCbCr(m, n)
	require.Equal(t, image.Rect(0, 0, 1, 1), got.Rect)
	require.Equal(t, []uint8{255, 255, 255, 255}, got.Pix)
}

// TestCMYKToRGBAMatchesColorModel: the in-place conversion of a CMYK image
// gives the colours of the standard library's model.
func TestCMYKToRGBAMatchesColorModel(t *testing.T) {
	m := image.NewCMYK(image.Rect(0, 0, 16, 16))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 37)
	}
	want := make([]color.RGBA, 0, 256)
	for y := range 16 {
		for x := range 16 {
			want = append(want, color.RGBAModel.Convert(m.At(x, y)).(color.RGBA))
		}
	}
	out := cmykToRGBA(m)
	for y := range 16 {
		for x := range 16 {
			require.Equal(t, want[y*16+x], out.RGBAAt(x, y), "at %d,%d", x, y)
		}
	}
}
