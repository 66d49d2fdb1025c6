package thumbnail

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// Source formats. The decoders are called directly, never through the
// image package's registry, so that a blank import of another decoder
// (TIFF, BMP, ...) elsewhere in a program never widens what is accepted.
const (
	formatJPEG = "jpeg"
	formatPNG  = "png"
	formatGIF  = "gif"
	formatWebP = "webp"
)

// sniff names the format of a source from its first bytes, or returns "".
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return formatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return formatGIF
	case len(b) >= 15 && string(b[:4]) == "RIFF" && string(b[8:15]) == "WEBPVP8":
		return formatWebP
	}
	return ""
}

func decodeConfig(format string, r io.Reader) (image.Config, error) {
	switch format {
	case formatJPEG:
		return jpeg.DecodeConfig(r)
	case formatPNG:
		return png.DecodeConfig(r)
	case formatGIF:
		return gif.DecodeConfig(r)
	default:
		return webp.DecodeConfig(r)
	}
}

func decode(format string, r io.Reader) (image.Image, error) {
	switch format {
	case formatJPEG:
		return jpeg.Decode(r)
	case formatPNG:
		return png.Decode(r)
	case formatGIF:
		return gif.Decode(r) // the first frame only
	default:
		return webp.Decode(r)
	}
}

// Generate reads an image from r and returns a JPEG thumbnail that fits
// inside size x size pixels, keeping the aspect ratio and never upscaling.
// JPEG EXIF orientation is applied, transparency is flattened onto white
// and no metadata is carried over.
//
// Only JPEG, PNG, GIF (first frame) and WebP are accepted; anything else
// fails with ErrUnsupported. The image dimensions are checked against the
// pixel limit before any pixel buffer is allocated and the source against
// the byte limit, both failing with ErrTooLarge. Data that does not decode
// fails with ErrCorrupt; an error reading r is returned wrapped. r is read
// once, front to back; only the header is kept in memory besides the
// decoded pixels.
func Generate(r io.Reader, size int, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	return c.generate(r, size)
}

func (c *config) generate(r io.Reader, size int) ([]byte, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidSize, size)
	}
	src := &limitedReader{r: r, n: c.maxSourceBytes}
	m, orient, err := c.decode(src)
	if src.over {
		return nil, fmt.Errorf("%w: source over %d bytes", ErrTooLarge, c.maxSourceBytes)
	}
	if src.err != nil {
		return nil, fmt.Errorf("thumbnail: read source: %w", src.err)
	}
	if err != nil {
		return nil, err
	}
	return c.render(m, orient, size)
}

// decode sniffs, checks the header against the limits, then decodes.
func (c *config) decode(src io.Reader) (image.Image, int, error) {
	rec := &recorder{r: src}
	var magic [16]byte
	n, err := io.ReadFull(rec, magic[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	format := sniff(magic[:n])
	if format == "" {
		return nil, 0, fmt.Errorf("%w: unrecognised header", ErrUnsupported)
	}
	cfg, err := safely(func() (image.Config, error) {
		return decodeConfig(format, io.MultiReader(bytes.NewReader(magic[:n]), rec))
	})
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s header: %v", ErrCorrupt, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, 0, fmt.Errorf("%w: %s: empty image %dx%d", ErrCorrupt, format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height) * pixelWeight(cfg.ColorModel); px > c.maxPixels {
		return nil, 0, fmt.Errorf("%w: %dx%d pixels (%s), limit %d", ErrTooLarge, cfg.Width, cfg.Height, weightNote(cfg.ColorModel), c.maxPixels)
	}
	header := rec.stop()
	orient := 1
	if format == formatJPEG {
		orient = jpegOrientation(header)
	}
	dec := decode
	if c.decoder != nil {
		dec = c.decoder
	}
	body := io.MultiReader(bytes.NewReader(header), src)
	m, err := safely(func() (image.Image, error) { return dec(format, body) })
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrCorrupt, format, err)
	}
	b := m.Bounds()
	if b.Empty() || int64(b.Dx())*int64(b.Dy()) > c.maxPixels {
		return nil, 0, fmt.Errorf("%w: %s: decoded bounds %v", ErrCorrupt, format, b)
	}
	return m, orient, nil
}

// safely runs a decoder and turns a panic into an error.
func safely[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	return f()
}

// recorder keeps a copy of what is read through it until stop.
type recorder struct {
	r       io.Reader
	buf     []byte
	stopped bool
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.stopped {
		r.buf = append(r.buf, p[:n]...)
	}
	return n, err
}

// stop ends recording and returns everything read so far.
func (r *recorder) stop() []byte {
	r.stopped = true
	b := r.buf
	r.buf = nil
	return b
}

// limitedReader reads at most n bytes from r. Reading past n sets over
// and fails; a read error other than io.EOF is kept in err so that it can
// be told apart from a format error.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
	err  error
}

var errOverLimit = errors.New("source over the byte limit")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, errOverLimit
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.n {
		l.over = true
		return int(l.n), errOverLimit
	}
	l.n -= int64(n)
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return n, err
}

// pixelWeight is how many pixels of the limit one pixel of colour model m
// counts as. The limit assumes 4 bytes a pixel; 16-bit-per-channel colour
// (a 16-bit RGBA PNG) decodes to 8 bytes a pixel and counts double, so the
// limit bounds memory, not just the pixel count.
func pixelWeight(m color.Model) int64 {
	switch m {
	case color.RGBA64Model, color.NRGBA64Model:
		return 2
	}
	return 1
}

func weightNote(m color.Model) string {
	if pixelWeight(m) > 1 {
		return "16-bit colour, counted double"
	}
	return "8-bit colour"
}
