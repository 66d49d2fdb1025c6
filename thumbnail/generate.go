package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"

	"github.com/casa-go/casa/internal/jpegdec"
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
// and no metadata is carried over. It is GenerateContext with a
// background context.
func Generate(r io.Reader, size int, opts ...GenerateOption) ([]byte, error) {
	return GenerateContext(context.Background(), r, size, opts...)
}

// GenerateContext is Generate under ctx: reads of r fail once ctx is done,
// and the generation stops there.
//
// Only JPEG, PNG, GIF (first frame) and WebP are accepted; anything else
// fails with ErrUnsupported. Before any pixel buffer is allocated the
// image dimensions are checked against the pixel limit (WithMaxPixels),
// and the memory that decoding and scaling will take, estimated from the
// header, against the memory limit (WithMaxMemory); the source is read
// through the byte limit (WithMaxSourceBytes), and a JPEG with more than
// MaxJPEGScans scans is refused as the scans arrive: all of these fail
// with ErrTooLarge. A generation that runs past its deadline
// (WithTimeout) is stopped at its next read and fails with ErrTimeout.
// Data that does not decode fails with ErrCorrupt; an error reading r is
// returned wrapped (ctx's cause when ctx ends). r is read once, front to
// back; only the header is kept in memory besides the decoded pixels.
func GenerateContext(ctx context.Context, r io.Reader, size int, opts ...GenerateOption) ([]byte, error) {
	all := make([]Option, len(opts))
	for i, o := range opts {
		all[i] = o
	}
	c := newConfig(all)
	return c.generate(ctx, r, size, nil)
}

// reserveFunc reserves n bytes of a shared memory budget for a
// generation, waiting under ctx; release gives them back.
type reserveFunc func(ctx context.Context, n int64) (release func(), err error)

func (c *config) generate(ctx context.Context, r io.Reader, size int, reserve reserveFunc) ([]byte, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidSize, size)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("%w (%v)", ErrTimeout, c.timeout))
	defer cancel()
	src := &limitedReader{r: &deadlineReader{ctx: ctx, r: r}, n: c.maxSourceBytes}
	m, orient, target, release, err := c.decode(ctx, src, size, reserve)
	if release != nil {
		defer release()
	}
	if src.over {
		return nil, fmt.Errorf("%w: source over %d bytes", ErrTooLarge, c.maxSourceBytes)
	}
	if src.err != nil {
		return nil, fmt.Errorf("thumbnail: read source: %w", src.err)
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil { // the decoder finished its work after the deadline
		return nil, fmt.Errorf("thumbnail: decode: %w", context.Cause(ctx))
	}
	return c.render(m, orient, target.X, target.Y)
}

// header is what decode learns before decoding the pixels.
type header struct {
	format string
	cfg    image.Config
	need   int64 // estimated bytes to decode and render
	jpeg   jpegFrame
	scale  int    // a JPEG's reduction (jpegScale), decoded by jpegdec when > 1
	raw    []byte // the bytes read so far, replayed to the decoder
}

// readHeader sniffs the format, reads the header, checks it against the
// pixel and memory limits, and estimates what the generation will
// allocate.
func (c *config) readHeader(src io.Reader, size int) (header, error) {
	var hd header
	rec := &recorder{r: src}
	var magic [16]byte
	n, err := io.ReadFull(rec, magic[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return hd, err
	}
	hd.format = sniff(magic[:n])
	if hd.format == "" {
		return hd, fmt.Errorf("%w: unrecognised header", ErrUnsupported)
	}
	if hd.format == formatJPEG {
		// Read the frame header ourselves: DecodeConfig does not tell
		// whether the JPEG is progressive, nor its sampling factors.
		f, err := safely(func() (jpegFrame, error) {
			return readJPEGHeader(io.MultiReader(bytes.NewReader(magic[:n]), rec))
		})
		if errors.Is(err, ErrUnsupported) {
			return hd, err
		}
		if err != nil {
			return hd, fmt.Errorf("%w: jpeg header: %v", ErrCorrupt, err)
		}
		hd.jpeg = f
	}
	cfg, err := safely(func() (image.Config, error) {
		if hd.format == formatJPEG {
			return jpeg.DecodeConfig(bytes.NewReader(rec.buf))
		}
		return decodeConfig(hd.format, io.MultiReader(bytes.NewReader(magic[:n]), rec))
	})
	if err != nil {
		return hd, fmt.Errorf("%w: %s header: %v", ErrCorrupt, hd.format, err)
	}
	hd.cfg = cfg
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return hd, fmt.Errorf("%w: %s: empty image %dx%d", ErrCorrupt, hd.format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height) * pixelWeight(cfg.ColorModel); px > c.maxPixels {
		return hd, fmt.Errorf("%w: %dx%d pixels (%s), limit %d", ErrTooLarge, cfg.Width, cfg.Height, weightNote(cfg.ColorModel), c.maxPixels)
	}
	hd.raw = rec.stop()
	hd.scale = 1
	if hd.format == formatJPEG {
		hd.scale = jpegScale(hd.jpeg, size)
	}
	dec, ycbcr, err := decodeBytes(hd)
	if err != nil {
		return hd, fmt.Errorf("%w: %s header: %v", ErrCorrupt, hd.format, err)
	}
	tw, th := fit(cfg.Width, cfg.Height, size)
	dw, dh := (cfg.Width+hd.scale-1)/hd.scale, (cfg.Height+hd.scale-1)/hd.scale
	hd.need = dec + renderBytes(dw, dh, tw, th, ycbcr) + overheadBytes
	if hd.need > c.maxMemory {
		return hd, fmt.Errorf("%w: %dx%d %s needs about %d MiB to decode, limit %d MiB",
			ErrTooLarge, cfg.Width, cfg.Height, describe(hd), hd.need>>20, c.maxMemory>>20)
	}
	return hd, nil
}

// decodeBytes estimates what the decoder of hd's format allocates, and
// whether it returns an *image.YCbCr.
func decodeBytes(hd header) (int64, bool, error) {
	w, h := int64(hd.cfg.Width), int64(hd.cfg.Height)
	switch hd.format {
	case formatJPEG:
		if hd.scale > 1 {
			n, ycbcr := jpegdecBytes(hd.jpeg, hd.scale)
			return n, ycbcr, nil
		}
		n, ycbcr := jpegDecodeBytes(hd.jpeg)
		return n, ycbcr, nil
	case formatPNG:
		// Signature, IHDR length and type, then the IHDR fields.
		if len(hd.raw) < 16+13 {
			return 0, false, errors.New("short IHDR")
		}
		n, err := pngDecodeBytes(hd.raw[16:])
		return n, false, err
	case formatGIF:
		return 2 * w * h, false, nil // the frame, and a copy to de-interlace
	default:
		if len(hd.raw) < 20 {
			return 0, false, errors.New("short chunk header")
		}
		// Only a plain lossy file is sure to decode to an *image.YCbCr.
		return webpDecodeBytes(hd.raw[12:], w, h), string(hd.raw[12:16]) == "VP8 ", nil
	}
}

// describe names the kind of image in an error message.
func describe(hd header) string {
	if hd.format != formatJPEG {
		return hd.format
	}
	kind := "baseline"
	if hd.jpeg.marker == 0xc2 {
		kind = "progressive"
	}
	return fmt.Sprintf("%s jpeg with %d components", kind, len(hd.jpeg.comps))
}

// decode reads the header, reserves the memory the generation needs
// (when reserve is not nil), then decodes the pixels; target is the size
// of the thumbnail. The caller calls release, when not nil, once it is
// done with the image.
func (c *config) decode(ctx context.Context, src io.Reader, size int, reserve reserveFunc) (m image.Image, orient int, target image.Point, release func(), err error) {
	hd, err := c.readHeader(src, size)
	if err != nil {
		return nil, 0, target, nil, err
	}
	target.X, target.Y = fit(hd.cfg.Width, hd.cfg.Height, size)
	if reserve != nil {
		if release, err = reserve(ctx, hd.need); err != nil {
			return nil, 0, target, nil, err
		}
	}
	orient = 1
	if hd.format == formatJPEG {
		orient = jpegOrientation(hd.raw)
	}
	dec := decode
	if hd.scale > 1 {
		// Shrink on load: a 1/2, 1/4 or 1/8 decode (jpegScale).
		dec = func(_ string, r io.Reader) (image.Image, error) {
			return jpegdec.Decode(r, jpegdec.Options{Scale: hd.scale, MaxPixels: c.maxPixels})
		}
	}
	if c.decoder != nil {
		dec = c.decoder
	}
	body := io.MultiReader(bytes.NewReader(hd.raw), src)
	var scans *scanCounter
	if hd.format == formatJPEG {
		scans = &scanCounter{ctx: ctx, r: body, max: MaxJPEGScans}
		body = scans
	}
	m, err = safely(func() (image.Image, error) { return dec(hd.format, body) })
	if scans != nil && scans.over {
		return nil, 0, target, release, fmt.Errorf("%w: jpeg with more than %d scans", ErrTooLarge, MaxJPEGScans)
	}
	if err != nil && ctx.Err() != nil {
		// Stopped by the deadline or a cancellation: not the data's fault.
		return nil, 0, target, release, fmt.Errorf("thumbnail: decode: %w", context.Cause(ctx))
	}
	if errors.Is(err, jpegdec.ErrUnsupported) {
		// The header promised what jpegdec decodes; a later segment
		// (a second frame type, DNL) did not keep the promise.
		return nil, 0, target, release, fmt.Errorf("%w: %s: %v", ErrUnsupported, hd.format, err)
	}
	if err != nil {
		return nil, 0, target, release, fmt.Errorf("%w: %s: %v", ErrCorrupt, hd.format, err)
	}
	b := m.Bounds()
	if b.Empty() || int64(b.Dx())*int64(b.Dy()) > c.maxPixels {
		return nil, 0, target, release, fmt.Errorf("%w: %s: decoded bounds %v", ErrCorrupt, hd.format, b)
	}
	return m, orient, target, release, nil
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
