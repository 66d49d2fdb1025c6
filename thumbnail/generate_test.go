package thumbnail_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

func decodeJPEG(t testing.TB, b []byte) image.Image {
	t.Helper()
	require.True(t, bytes.HasPrefix(b, []byte{0xff, 0xd8}), "output is not a JPEG")
	m, err := jpeg.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return m
}

// requireNear fails unless the colour at (x, y) of m is within tol of
// want in every channel.
func requireNear(t *testing.T, m image.Image, x, y int, want color.NRGBA) {
	t.Helper()
	got := color.NRGBAModel.Convert(m.At(m.Bounds().Min.X+x, m.Bounds().Min.Y+y)).(color.NRGBA)
	d := func(a, b uint8) int { return max(int(a)-int(b), int(b)-int(a)) }
	require.LessOrEqual(t, max(d(got.R, want.R), d(got.G, want.G), d(got.B, want.B)), 40,
		"at (%d,%d): want %v, got %v", x, y, want, got)
}

func grayJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, m, nil))
	return b.Bytes()
}

func TestGenerateDimensions(t *testing.T) {
	t.Parallel()
	green := color.NRGBA{R: 10, G: 200, B: 30, A: 255}
	tests := []struct {
		name       string
		src        []byte
		size       int
		wantW, wan int
	}{
		{"jpeg landscape", imagetest.JPEG(400, 300), 150, 150, 113},
		{"jpeg pre-shrunk", imagetest.JPEG(640, 480), 150, 150, 113},
		{"jpeg portrait", imagetest.JPEG(300, 400), 150, 113, 150},
		{"jpeg small never upscaled", imagetest.JPEG(60, 40), 150, 60, 40},
		{"jpeg exact", imagetest.JPEG(150, 150), 150, 150, 150},
		{"jpeg size 1", imagetest.JPEG(64, 48), 1, 1, 1},
		{"jpeg sliver", imagetest.JPEG(8, 1000), 100, 1, 100},
		{"jpeg gray", grayJPEG(t, 320, 200), 100, 100, 63},
		{"png", imagetest.PNG(300, 400), 100, 75, 100},
		{"png pre-shrunk", imagetest.PNG(400, 200), 100, 100, 50},
		{"png alpha", imagetest.PNGWithAlpha(200, 100), 100, 100, 50},
		{"gif", imagetest.GIF(120, 60), 60, 60, 30},
		{"webp", imagetest.WebP(300, 200, green), 150, 150, 100},
		{"webp small", imagetest.WebP(3, 2, green), 150, 3, 2},
		{"progressive jpeg 4:2:0", imagetest.ProgressiveJPEG(300, 200, imagetest.LayoutYCbCr420, 10, false), 150, 150, 100},
		{"progressive jpeg cmyk", imagetest.ProgressiveJPEG(300, 200, imagetest.LayoutCMYK, 8, false), 150, 150, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := thumbnail.Generate(bytes.NewReader(tt.src), tt.size)
			require.NoError(t, err)
			m := decodeJPEG(t, out)
			require.Equal(t, image.Rect(0, 0, tt.wantW, tt.wan), m.Bounds())
			require.False(t, bytes.Contains(out, []byte("Exif")), "metadata carried over")
		})
	}
}

func TestGenerateOrientation(t *testing.T) {
	t.Parallel()
	r, g, b, w := imagetest.Red, imagetest.Green, imagetest.Blue, imagetest.White
	// Corners of the displayed image (TL, TR, BL, BR) for each EXIF
	// orientation of a stored image with corners Red, Green, Blue, White,
	// as the EXIF specification defines them.
	tests := []struct {
		orient   int
		portrait bool
		corners  [4]color.NRGBA
	}{
		{1, false, [4]color.NRGBA{r, g, b, w}},
		{2, false, [4]color.NRGBA{g, r, w, b}}, // mirrored horizontally
		{3, false, [4]color.NRGBA{w, b, g, r}}, // rotated 180
		{4, false, [4]color.NRGBA{b, w, r, g}}, // mirrored vertically
		{5, true, [4]color.NRGBA{r, b, g, w}},  // transposed
		{6, true, [4]color.NRGBA{b, r, w, g}},  // rotated 90 clockwise
		{7, true, [4]color.NRGBA{w, g, b, r}},  // transversed
		{8, true, [4]color.NRGBA{g, w, r, b}},  // rotated 90 counter-clockwise
		{0, false, [4]color.NRGBA{r, g, b, w}}, // invalid: as stored
		{9, false, [4]color.NRGBA{r, g, b, w}}, // invalid: as stored
	}
	for _, tt := range tests {
		for _, size := range []int{50, 1000} { // pre-shrink path and no resize at all
			t.Run("", func(t *testing.T) {
				t.Parallel()
				out, err := thumbnail.Generate(bytes.NewReader(imagetest.JPEGWithOrientation(400, 200, tt.orient)), size)
				require.NoError(t, err)
				m := decodeJPEG(t, out)
				long, short := min(size, 400), min(size, 400)/2
				want := image.Rect(0, 0, long, short)
				if tt.portrait {
					want = image.Rect(0, 0, short, long)
				}
				require.Equal(t, want, m.Bounds(), "orientation %d size %d", tt.orient, size)
				dx, dy := m.Bounds().Dx(), m.Bounds().Dy()
				requireNear(t, m, dx/8, dy/8, tt.corners[0])
				requireNear(t, m, dx-1-dx/8, dy/8, tt.corners[1])
				requireNear(t, m, dx/8, dy-1-dy/8, tt.corners[2])
				requireNear(t, m, dx-1-dx/8, dy-1-dy/8, tt.corners[3])
			})
		}
	}
}

func TestGenerateFlattensAlphaOnWhite(t *testing.T) {
	t.Parallel()
	for _, size := range []int{40, 1000} {
		out, err := thumbnail.Generate(bytes.NewReader(imagetest.PNGWithAlpha(200, 100)), size)
		require.NoError(t, err)
		m := decodeJPEG(t, out)
		dx := m.Bounds().Dx()
		requireNear(t, m, dx/8, 5, imagetest.White)
		requireNear(t, m, dx-1-dx/8, 5, imagetest.Red)
	}
}

func TestGenerateGIFFirstFrame(t *testing.T) {
	t.Parallel()
	out, err := thumbnail.Generate(bytes.NewReader(imagetest.GIF(120, 60)), 60)
	require.NoError(t, err)
	requireNear(t, decodeJPEG(t, out), 30, 15, imagetest.Green)
}

func TestGenerateQuality(t *testing.T) {
	t.Parallel()
	src := imagetest.JPEG(320, 240)
	lo, err := thumbnail.Generate(bytes.NewReader(src), 150, thumbnail.WithQuality(20))
	require.NoError(t, err)
	def, err := thumbnail.Generate(bytes.NewReader(src), 150)
	require.NoError(t, err)
	hi, err := thumbnail.Generate(bytes.NewReader(src), 150, thumbnail.WithQuality(100))
	require.NoError(t, err)
	require.Less(t, len(lo), len(def))
	require.Less(t, len(def), len(hi))
	same, err := thumbnail.Generate(bytes.NewReader(src), 150, thumbnail.WithQuality(thumbnail.DefaultQuality))
	require.NoError(t, err)
	require.Equal(t, def, same, "generation is deterministic")
}

// withSOF returns a copy of the JPEG b whose frame header claims w x h.
func withSOF(t *testing.T, b []byte, w, h uint16) []byte {
	t.Helper()
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte{0xff, 0xc0})
	require.Positive(t, i)
	binary.BigEndian.PutUint16(c[i+5:], h)
	binary.BigEndian.PutUint16(c[i+7:], w)
	return c
}

// badHuffman returns a copy of the JPEG b whose first Huffman table has
// three 1-bit codes (only two exist), with the total count unchanged.
func badHuffman(t *testing.T, b []byte) []byte {
	t.Helper()
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte{0xff, 0xc4})
	require.Positive(t, i)
	counts := c[i+5 : i+21]
	require.GreaterOrEqual(t, counts[2], byte(3))
	counts[0] += 3
	counts[2] -= 3
	return c
}

// withPrecision returns a copy of the baseline JPEG b whose frame header
// claims bits-bit samples.
func withPrecision(t *testing.T, b []byte, bits byte) []byte {
	t.Helper()
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte{0xff, 0xc0})
	require.Positive(t, i)
	c[i+4] = bits
	return c
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestGenerateHostileInputs(t *testing.T) {
	t.Parallel()
	jpg, png, gif := imagetest.JPEG(64, 48), imagetest.PNG(64, 48), imagetest.GIF(64, 48)
	errRead := errors.New("backend went away")
	tests := []struct {
		name string
		src  io.Reader
		opts []thumbnail.GenerateOption
		want error
		size int // 32 when 0
	}{
		{"empty", bytes.NewReader(nil), nil, thumbnail.ErrUnsupported, 0},
		{"text", bytes.NewReader([]byte("hello, world")), nil, thumbnail.ErrUnsupported, 0},
		{"pdf", bytes.NewReader(imagetest.PDF()), nil, thumbnail.ErrUnsupported, 0},
		{"tiff", bytes.NewReader([]byte("II*\x00\x08\x00\x00\x00\x00\x00")), nil, thumbnail.ErrUnsupported, 0},
		{"bmp", bytes.NewReader([]byte("BM\x3e\x00\x00\x00\x00\x00\x00\x00\x3e\x00\x00\x00")), nil, thumbnail.ErrUnsupported, 0},
		{"svg", bytes.NewReader([]byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)), nil, thumbnail.ErrUnsupported, 0},
		{"riff not webp", bytes.NewReader([]byte("RIFF\x10\x00\x00\x00WAVEfmt ")), nil, thumbnail.ErrUnsupported, 0},
		{"png bomb 100000x100000", bytes.NewReader(imagetest.PNGBomb(100000, 100000)), nil, thumbnail.ErrTooLarge, 0},
		{"png bomb under a lower limit", bytes.NewReader(imagetest.PNGBomb(2000, 2000)), []thumbnail.GenerateOption{thumbnail.WithMaxPixels(1_000_000)}, thumbnail.ErrTooLarge, 0},
		{"png bomb within limit", bytes.NewReader(imagetest.PNGBomb(500, 500)), nil, thumbnail.ErrCorrupt, 0},
		{"jpeg claiming 65535x65535", bytes.NewReader(withSOF(t, jpg, 65535, 65535)), nil, thumbnail.ErrTooLarge, 0},
		{"jpeg claiming 0 wide", bytes.NewReader(withSOF(t, jpg, 0, 48)), nil, thumbnail.ErrCorrupt, 0},
		{"webp bomb", bytes.NewReader(imagetest.WebP(16384, 16384, imagetest.Red)), nil, thumbnail.ErrTooLarge, 0},
		{"jpeg over byte limit", bytes.NewReader(jpg), []thumbnail.GenerateOption{thumbnail.WithMaxSourceBytes(int64(len(jpg)) / 2)}, thumbnail.ErrTooLarge, 0},
		{"jpeg header over byte limit", bytes.NewReader(jpg), []thumbnail.GenerateOption{thumbnail.WithMaxSourceBytes(10)}, thumbnail.ErrTooLarge, 0},
		{"truncated jpeg", bytes.NewReader(imagetest.Truncated(jpg)), nil, thumbnail.ErrCorrupt, 0},
		{"corrupt jpeg", bytes.NewReader(imagetest.Corrupt(jpg)), nil, thumbnail.ErrCorrupt, 0},
		{"jpeg soi only", bytes.NewReader([]byte{0xff, 0xd8, 0xff}), nil, thumbnail.ErrCorrupt, 0},
		{"truncated png", bytes.NewReader(imagetest.Truncated(png)), nil, thumbnail.ErrCorrupt, 0},
		{"corrupt png", bytes.NewReader(imagetest.Corrupt(png)), nil, thumbnail.ErrCorrupt, 0},
		{"png signature only", bytes.NewReader([]byte("\x89PNG\r\n\x1a\n")), nil, thumbnail.ErrCorrupt, 0},
		{"truncated gif", bytes.NewReader(imagetest.Truncated(gif)), nil, thumbnail.ErrCorrupt, 0},
		{"truncated webp", bytes.NewReader(imagetest.Truncated(imagetest.WebP(30, 30, imagetest.Red))), nil, thumbnail.ErrCorrupt, 0},
		{"progressive cmyk 7000x7000", bytes.NewReader(imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutCMYK, 4, false)), nil, thumbnail.ErrTooLarge, 0},
		{"truncated progressive cmyk 7000x7000", bytes.NewReader(imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutCMYK, 4, true)), nil, thumbnail.ErrTooLarge, 0},
		// At full size (a thumbnail over half the image decodes at 1/1 by image/jpeg).
		{"progressive ycbcr 4:4:4 7000x7000", bytes.NewReader(imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutYCbCr444, 3, false)), nil, thumbnail.ErrTooLarge, 4000},
		{"progressive under a memory limit", bytes.NewReader(imagetest.ProgressiveJPEG(1000, 1000, imagetest.LayoutGray, 1, false)), []thumbnail.GenerateOption{thumbnail.WithMaxMemory(4 << 20)}, thumbnail.ErrTooLarge, 600},
		// Shrunk on load by jpegdec (internal/jpegdec has its own table).
		{"progressive ycbcr 4:4:4 7000x7000 at 1/2", bytes.NewReader(imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutYCbCr444, 3, false)), nil, thumbnail.ErrTooLarge, 3000},
		{"progressive 4:2:0 at 1/4 under a memory limit", bytes.NewReader(imagetest.ProgressiveJPEG(2000, 2000, imagetest.LayoutYCbCr420, 3, false)), []thumbnail.GenerateOption{thumbnail.WithMaxMemory(8 << 20)}, thumbnail.ErrTooLarge, 500},
		{"truncated progressive at 1/8", bytes.NewReader(imagetest.ProgressiveJPEG(800, 800, imagetest.LayoutYCbCr444, 3, true)), nil, thumbnail.ErrCorrupt, 100},
		{"truncated progressive at 1/2", bytes.NewReader(imagetest.ProgressiveJPEG(800, 800, imagetest.LayoutYCbCr420, 3, true)), nil, thumbnail.ErrCorrupt, 400},
		{"progressive with 2000 scans at 1/8", bytes.NewReader(imagetest.ProgressiveJPEG(800, 800, imagetest.LayoutGray, 2000, false)), nil, thumbnail.ErrTooLarge, 100},
		{"truncated baseline at 1/8", bytes.NewReader(imagetest.Truncated(imagetest.JPEG(640, 480))), nil, thumbnail.ErrCorrupt, 80},
		{"truncated baseline at 1/4", bytes.NewReader(imagetest.Truncated(imagetest.JPEG(640, 480))), nil, thumbnail.ErrCorrupt, 160},
		{"corrupt baseline at 1/2", bytes.NewReader(imagetest.Corrupt(imagetest.JPEG(640, 480))), nil, thumbnail.ErrCorrupt, 320},
		{"baseline with a bad Huffman table at 1/8", bytes.NewReader(badHuffman(t, imagetest.JPEG(640, 480))), nil, thumbnail.ErrCorrupt, 80},
		{"baseline claiming 65535x65535 at 1/8", bytes.NewReader(withSOF(t, imagetest.JPEG(640, 480), 65535, 65535)), nil, thumbnail.ErrTooLarge, 80},
		{"baseline 12-bit", bytes.NewReader(withPrecision(t, imagetest.JPEG(64, 48), 12)), nil, thumbnail.ErrUnsupported, 8},
		{"progressive with 2000 scans", bytes.NewReader(imagetest.ProgressiveJPEG(500, 500, imagetest.LayoutGray, 2000, false)), nil, thumbnail.ErrTooLarge, 0},
		{"truncated progressive", bytes.NewReader(imagetest.ProgressiveJPEG(500, 500, imagetest.LayoutYCbCr420, 3, true)), nil, thumbnail.ErrCorrupt, 0},
		{"jpeg lossless frame (SOF3)", bytes.NewReader(bytes.Replace(imagetest.ProgressiveJPEG(64, 48, imagetest.LayoutGray, 1, false), []byte{0xff, 0xc2}, []byte{0xff, 0xc3}, 1)), nil, thumbnail.ErrUnsupported, 0},
		{"jpeg scan before frame", bytes.NewReader([]byte{0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 63, 0}), nil, thumbnail.ErrCorrupt, 0},
		{"png 16-bit interlaced 7000x7000", bytes.NewReader(imagetest.PNGInterlaced16(7000, 7000)), nil, thumbnail.ErrTooLarge, 0},
		{"png 16-bit interlaced, truncated data", bytes.NewReader(imagetest.PNGInterlaced16(300, 300)), nil, thumbnail.ErrCorrupt, 0},
		{"webp lossless 7000x7000 under a memory limit", bytes.NewReader(imagetest.WebP(7000, 7000, imagetest.Red)), []thumbnail.GenerateOption{thumbnail.WithMaxMemory(64 << 20)}, thumbnail.ErrTooLarge, 0},
		{"read error in header", &failingReader{data: jpg[:4], err: errRead}, nil, errRead, 0},
		{"read error in data", &failingReader{data: jpg[:len(jpg)/2], err: errRead}, nil, errRead, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			size := tt.size
			if size == 0 {
				size = 32
			}
			out, err := thumbnail.Generate(tt.src, size, tt.opts...)
			require.ErrorIs(t, err, tt.want)
			require.Nil(t, out)
			for _, other := range []error{thumbnail.ErrUnsupported, thumbnail.ErrTooLarge, thumbnail.ErrCorrupt, errRead} {
				if other != tt.want {
					require.NotErrorIs(t, err, other)
				}
			}
		})
	}
}

func TestGenerateInvalidSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, -1} {
		_, err := thumbnail.Generate(bytes.NewReader(imagetest.JPEG(8, 8)), size)
		require.ErrorIs(t, err, thumbnail.ErrInvalidSize)
	}
}

func TestGenerateDecoderPanicIsAnError(t *testing.T) {
	t.Parallel()
	panicky := thumbnail.WithDecoder(func(string, io.Reader) (image.Image, error) { panic("boom") })
	out, err := thumbnail.Generate(bytes.NewReader(imagetest.JPEG(16, 16)), 8, panicky)
	require.ErrorIs(t, err, thumbnail.ErrCorrupt)
	require.ErrorContains(t, err, "boom")
	require.Nil(t, out)
}

// TestGenerateBombBoundedMemory is not parallel: it measures the bytes
// allocated by the process while refusing decompression bombs.
func TestGenerateBombBoundedMemory(t *testing.T) {
	bombs := map[string][]byte{
		"png":  imagetest.PNGBomb(100000, 100000),
		"webp": imagetest.WebP(16384, 16384, imagetest.Red),
		"jpeg": withSOF(t, imagetest.JPEG(16, 16), 65535, 65535),
	}
	for name, b := range bombs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := thumbnail.Generate(bytes.NewReader(b), 150)
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, thumbnail.ErrTooLarge, name)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<10), "%s: allocated while refusing", name)
	}
}

// FuzzGenerate feeds arbitrary bytes to the generator: it must never panic,
// fail only with the package's errors, keep memory bounded (a 1 MP limit)
// and, when it succeeds, return a JPEG that fits.
func FuzzGenerate(f *testing.F) {
	for _, b := range [][]byte{
		nil, imagetest.PDF(), imagetest.JPEG(32, 24), imagetest.JPEGWithOrientation(24, 32, 6),
		imagetest.PNG(20, 10), imagetest.PNGWithAlpha(10, 20), imagetest.GIF(16, 8),
		imagetest.WebP(9, 7, imagetest.Blue), imagetest.PNGBomb(100000, 100000),
		imagetest.Truncated(imagetest.JPEG(32, 24)), imagetest.Corrupt(imagetest.PNG(20, 10)),
		imagetest.ProgressiveJPEG(40, 30, imagetest.LayoutYCbCr420, 6, false),
		imagetest.ProgressiveJPEG(40, 30, imagetest.LayoutCMYK, 4, true),
		imagetest.JPEG(140, 100), imagetest.ProgressivePhoto(70, 50), // shrunk on load to 16
		imagetest.ProgressiveJPEG(150, 130, imagetest.LayoutYCbCr444, 3, false),
		imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutYCbCr444, 3, false),
		imagetest.ProgressiveJPEG(16, 16, imagetest.LayoutGray, thumbnail.MaxJPEGScans+1, false),
		imagetest.PNGInterlaced16(30, 20), imagetest.PNGInterlaced16(7000, 7000),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := thumbnail.Generate(bytes.NewReader(b), 16, thumbnail.WithMaxPixels(1<<20),
			thumbnail.WithMaxSourceBytes(1<<20), thumbnail.WithMaxMemory(64<<20))
		if err != nil {
			if !errors.Is(err, thumbnail.ErrUnsupported) && !errors.Is(err, thumbnail.ErrTooLarge) && !errors.Is(err, thumbnail.ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		m, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
		if m.Bounds().Dx() > 16 || m.Bounds().Dy() > 16 || m.Bounds().Empty() {
			t.Fatalf("output bounds %v do not fit 16x16", m.Bounds())
		}
	})
}

// TestPixelLimitCountsSixteenBitDouble: a 16-bit PNG decodes to 8 bytes a
// pixel, so it counts double against the pixel limit; the same dimensions
// in 8-bit colour pass.
func TestPixelLimitCountsSixteenBitDouble(t *testing.T) {
	t.Parallel()
	encode := func(m image.Image) []byte {
		var buf bytes.Buffer
		require.NoError(t, png.Encode(&buf, m))
		return buf.Bytes()
	}
	const w, h = 100, 100 // 10,000 pixels
	wide := encode(image.NewNRGBA64(image.Rect(0, 0, w, h)))
	narrow := encode(image.NewNRGBA(image.Rect(0, 0, w, h)))
	limit := thumbnail.WithMaxPixels(15_000)

	_, err := thumbnail.Generate(bytes.NewReader(wide), 50, limit)
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	require.Contains(t, err.Error(), "16-bit")

	out, err := thumbnail.Generate(bytes.NewReader(narrow), 50, limit)
	require.NoError(t, err)
	require.Equal(t, 50, decodeJPEG(t, out).Bounds().Dx())

	_, err = thumbnail.Generate(bytes.NewReader(wide), 50, thumbnail.WithMaxPixels(20_000))
	require.NoError(t, err, "at twice its pixel count the 16-bit image fits")
}
