package imagetest

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/image/webp"
)

func near(t *testing.T, want color.NRGBA, got color.Color) {
	t.Helper()
	n := color.NRGBAModel.Convert(got).(color.NRGBA)
	d := func(a, b uint8) int { return max(int(a)-int(b), int(b)-int(a)) }
	require.LessOrEqual(t, max(d(n.R, want.R), d(n.G, want.G), d(n.B, want.B), d(n.A, want.A)), 12, "want %v, got %v", want, n)
}

func TestJPEGDeterministicAndPhotoLike(t *testing.T) {
	t.Parallel()
	a, b := JPEG(64, 48), JPEG(64, 48)
	require.Equal(t, a, b)
	m, err := jpeg.Decode(bytes.NewReader(a))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 64, 48), m.Bounds())
	// Not flat: many distinct luma values.
	seen := map[uint8]bool{}
	for _, v := range m.(*image.YCbCr).Y {
		seen[v] = true
	}
	require.Greater(t, len(seen), 50)
}

func TestJPEGWithOrientation(t *testing.T) {
	t.Parallel()
	b := JPEGWithOrientation(40, 20, 6)
	require.Equal(t, []byte{0xff, 0xd8, 0xff, 0xe1}, b[:4])
	require.True(t, bytes.Contains(b[:64], []byte("Exif\x00\x00MM")))
	m, err := jpeg.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 40, 20), m.Bounds())
	near(t, Red, m.At(2, 2))
	near(t, Green, m.At(37, 2))
	near(t, Blue, m.At(2, 17))
	near(t, White, m.At(37, 17))
}

func TestPNGWithAlpha(t *testing.T) {
	t.Parallel()
	m, err := png.Decode(bytes.NewReader(PNGWithAlpha(10, 4)))
	require.NoError(t, err)
	near(t, color.NRGBA{}, m.At(1, 1))
	near(t, Red, m.At(8, 1))
}

func TestGIFFirstFrameGreen(t *testing.T) {
	t.Parallel()
	g, err := gif.DecodeAll(bytes.NewReader(GIF(8, 6)))
	require.NoError(t, err)
	require.Len(t, g.Image, 2)
	near(t, Green, g.Image[0].At(3, 3))
	near(t, Blue, g.Image[1].At(3, 3))
}

func TestPNGBomb(t *testing.T) {
	t.Parallel()
	b := PNGBomb(100000, 100000)
	require.Less(t, len(b), 100)
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 100000, cfg.Width)
	require.Equal(t, 100000, cfg.Height)
	// Small claim: the header is valid, the data is short.
	_, err = png.Decode(bytes.NewReader(PNGBomb(50, 50)))
	require.Error(t, err)
}

func TestWebP(t *testing.T) {
	t.Parallel()
	c := color.NRGBA{R: 10, G: 200, B: 30, A: 255}
	b := WebP(7, 5, c)
	cfg, err := webp.DecodeConfig(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 7, cfg.Width)
	require.Equal(t, 5, cfg.Height)
	m, err := webp.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 7, 5), m.Bounds())
	near(t, c, m.At(6, 4))
	near(t, c, m.At(0, 0))
}

func TestBrokenFixtures(t *testing.T) {
	t.Parallel()
	j := JPEG(64, 64)
	p := PNG(64, 64)
	for name, b := range map[string][]byte{
		"truncated jpeg": Truncated(j), "corrupt jpeg": Corrupt(j),
		"truncated png": Truncated(p), "corrupt png": Corrupt(p),
	} {
		_, _, err := image.Decode(bytes.NewReader(b))
		require.Error(t, err, name)
	}
	require.True(t, bytes.HasPrefix(PDF(), []byte("%PDF-")))
}

// TestProgressivePhoto: the hand-made progressive file is a progressive
// JPEG that image/jpeg decodes to the picture (as close to Photo as the
// baseline JPEG of it is, within a level on average).
func TestProgressivePhoto(t *testing.T) {
	t.Parallel()
	for _, sz := range [][2]int{{64, 48}, {33, 17}, {301, 203}} {
		p := ProgressivePhoto(sz[0], sz[1])
		require.True(t, bytes.Contains(p, []byte{0xff, 0xc2}), "SOF2")
		pm, err := jpeg.Decode(bytes.NewReader(p))
		require.NoError(t, err)
		bm, err := jpeg.Decode(bytes.NewReader(JPEG(sz[0], sz[1])))
		require.NoError(t, err)
		src := Photo(sz[0], sz[1])
		py, by := pm.(*image.YCbCr), bm.(*image.YCbCr)
		require.Equal(t, by.Rect, py.Rect)
		var errP, errB int
		for y := range sz[1] {
			for x := range sz[0] {
				s := int(src.Y[src.YOffset(x, y)])
				errP += max(int(py.Y[py.YOffset(x, y)])-s, s-int(py.Y[py.YOffset(x, y)]))
				errB += max(int(by.Y[by.YOffset(x, y)])-s, s-int(by.Y[by.YOffset(x, y)]))
			}
		}
		n := sz[0] * sz[1]
		require.LessOrEqual(t, float64(errP)/float64(n), float64(errB)/float64(n)+1, "%v", sz)
	}
}
