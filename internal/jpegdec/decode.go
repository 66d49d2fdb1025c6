// Package jpegdec decodes baseline (SOF0) and progressive (SOF2)
// Huffman-coded JPEGs (ITU-T T.81), 8-bit, grayscale or YCbCr with Cb and
// Cr sampled at 1/1 or 1/2 of Y in each direction (4:4:4, 4:2:2, 4:2:0,
// 4:4:0), at 1/1, 1/2, 1/4 or 1/8 scale, into image.Gray or image.YCbCr
// planes at their native sampling. It is thumbnail's shrink-on-load
// decoder: at 1/2 and 1/4 each 8x8 block goes through a reduced inverse
// DCT (4x4 or 2x2 outputs), at 1/8 only the DC coefficients are used, so
// a reduced decode does a fraction of a full decode's work and memory.
//
// What it does not decode (CMYK, YCCK, Adobe RGB, SOF1, 12-bit,
// arithmetic coding, other samplings) fails with ErrUnsupported; the
// caller falls back to image/jpeg or refuses. Corrupt data fails with an
// error; nothing panics (every index is bounded by the frame the header
// declared, checked before anything is allocated).
package jpegdec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
)

// ErrUnsupported is returned for a JPEG this package does not decode.
var ErrUnsupported = errors.New("jpegdec: unsupported JPEG")

// ErrTooLarge is returned for a frame over Options.MaxPixels.
var ErrTooLarge = errors.New("jpegdec: image too large")

// errFormat is corrupt data.
type formatError string

func (e formatError) Error() string { return "jpegdec: " + string(e) }

// Options control a decode.
type Options struct {
	// Scale is the reduction, 1, 2, 4 or 8: the image is decoded at
	// ceil(width/Scale) x ceil(height/Scale). 0 means 1.
	Scale int
	// MaxPixels, when above 0, refuses a frame of more pixels (width
	// times height, before scaling) with ErrTooLarge before allocating.
	MaxPixels int64
}

// Frame describes a JPEG frame header, as far as this package needs.
type Frame struct {
	Progressive   bool
	Width, Height int
	// Components is 1 (gray) or 3 (YCbCr), with the sampling factors of
	// each (gray is always 1x1).
	Components int
	H, V       [3]int
}

// decoderBytes is the decoder's own size: its Huffman and quantisation
// tables and its read buffer (about 18 KiB), rounded up.
const decoderBytes = 24 << 10

// Bytes is what Decode allocates for the frame at scale: the decoder
// (decoderBytes), the planes, and for a progressive frame the
// coefficients kept until the last scan (128 bytes a block, or 2 for a
// component decoded at 1/8, where only the DC coefficients are kept).
func (f Frame) Bytes(scale int) int64 {
	hmax, vmax := int64(f.H[0]), int64(f.V[0])
	mxx := (int64(f.Width) + 8*hmax - 1) / (8 * hmax)
	myy := (int64(f.Height) + 8*vmax - 1) / (8 * vmax)
	n := int64(decoderBytes)
	for i := range f.Components {
		cs := componentScale(scale, i, f.H[0], f.V[0], f.H[i], f.V[i])
		bs := int64(8 / cs)
		blocks := mxx * int64(f.H[i]) * myy * int64(f.V[i])
		n += blocks * bs * bs
		if f.Progressive {
			if cs == 8 {
				n += 2 * blocks
			} else {
				n += 128 * blocks
			}
		}
	}
	return n
}

const (
	markerSOF0 = 0xc0
	markerSOF1 = 0xc1
	markerSOF2 = 0xc2
	markerDHT  = 0xc4
	markerRST0 = 0xd0
	markerRST7 = 0xd7
	markerSOI  = 0xd8
	markerEOI  = 0xd9
	markerSOS  = 0xda
	markerDQT  = 0xdb
	markerDNL  = 0xdc
	markerDRI  = 0xdd
	markerAPP0 = 0xe0
	markerAPPE = 0xee
)

// zigzag maps the zig-zag index of a coefficient (section A.3.6) to its
// natural-order index; entries past 63 guard against hostile run lengths.
var zigzag = [64 + 16]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
	63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
}

// componentScale is the scale component i (of sampling h, v; the first
// component's is h0, v0) is decoded at for an image at scale: chroma at
// half the luma resolution both ways (4:2:0) is decoded at twice the
// image's scale, with the next larger IDCT, so that its plane has the
// luma plane's resolution (a 4:4:4 result): at 1/8 a 4:2:0 chroma block
// would otherwise be one sample for 16x16 pixels, which blurs colour
// edges well past what the thumbnail's own filter does.
func componentScale(scale, i, h0, v0, h, v int) int {
	if i > 0 && scale > 1 && h0 == 2*h && v0 == 2*v {
		return scale / 2
	}
	return scale
}

type component struct {
	id     uint8
	h, v   int
	tq     uint8
	scale  int // the component's own scale (componentScale)
	bs     int // output samples a block side: 8/scale
	bw, bh int // blocks a row and rows of blocks, padded to whole MCUs
	// cw, ch are the blocks a non-interleaved scan codes (section A.2.2:
	// the component's own dimensions, rounded up to whole blocks).
	cw, ch int
	pix    []byte // the plane, bw*bs bytes a row
	coef   []int16
}

type decoder struct {
	bitReader
	opts  Options
	scale int

	frame       bool
	progressive bool
	width       int
	height      int
	comps       []component
	mxx, myy    int
	jfif        bool
	adobe       bool
	adobeColour byte

	quant  [4][64]int32 // natural order
	dc, ac [4]huffTable
	ri     int // restart interval in MCUs
	eobRun int32

	// checkRange makes reconstruct set wild when a dequantised
	// coefficient is outside what an 8-bit image's DCT produces (tests
	// compare only images without, see decode_test.go).
	checkRange bool
	wild       bool
	// eobn is set when a sequential block holds an AC symbol of size 0
	// and a run other than 0 and 15, which T.81 leaves undefined there:
	// this package (as libjpeg) ends the block, image/jpeg reads it as a
	// progressive end-of-band run over the next blocks, so tests do not
	// compare such files.
	eobn bool
}

// Decode decodes the JPEG read from r at 1/opts.Scale.
func Decode(r io.Reader, opts Options) (image.Image, error) {
	d := newDecoder(r, opts)
	if d.scale == 0 {
		return nil, fmt.Errorf("jpegdec: scale %d, not 1, 2, 4 or 8", opts.Scale)
	}
	return d.decode()
}

func newDecoder(r io.Reader, opts Options) *decoder {
	d := &decoder{opts: opts}
	d.r = r
	d.buf = make([]byte, 4096)
	switch s := opts.Scale; s {
	case 0, 1:
		d.scale = 1
	case 2, 4, 8:
		d.scale = s
	}
	return d
}

func (d *decoder) decode() (image.Image, error) {
	var tmp [2]byte
	if err := d.readFull(tmp[:]); err != nil {
		return nil, err
	}
	if tmp != [2]byte{0xff, markerSOI} {
		return nil, formatError("missing SOI marker")
	}
	scanned := false
	m, err := d.nextMarker()
	for {
		if err != nil {
			return nil, err
		}
		switch {
		case m == markerEOI:
			if !scanned {
				return nil, formatError("no scan before EOI")
			}
			return d.finish()
		case m == markerSOS:
			if !d.frame {
				return nil, formatError("SOS before SOF")
			}
			if err := d.scan(); err != nil {
				return nil, err
			}
			scanned = true
			m, err = d.nextMarker()
			continue
		case markerRST0 <= m && m <= markerRST7 || m == markerSOI || m == 0x01:
			// No segment follows; a stray RST between scans is ignored,
			// as image/jpeg and libjpeg do.
			m, err = d.nextMarker()
			continue
		}
		if err := d.readFull(tmp[:]); err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint16(tmp[:])) - 2
		if n < 0 {
			return nil, formatError("short segment length")
		}
		if err := d.segment(m, n); err != nil {
			return nil, err
		}
		m, err = d.nextMarker()
	}
}

// segment processes the marker segment m of n bytes (after its length).
func (d *decoder) segment(m byte, n int) error {
	switch {
	case m == markerSOF0 || m == markerSOF2:
		return d.sof(m, n)
	case m == markerSOF1 || 0xc3 <= m && m <= 0xcf && m != markerDHT && m != 0xc8 && m != 0xcc:
		return fmt.Errorf("%w: frame type SOF%d", ErrUnsupported, m-0xc0)
	case m == 0xcc:
		return fmt.Errorf("%w: arithmetic coding", ErrUnsupported)
	case m == markerDHT:
		return d.dht(n)
	case m == markerDQT:
		return d.dqt(n)
	case m == markerDRI:
		if n != 2 {
			return formatError("bad DRI length")
		}
		var b [2]byte
		if err := d.readFull(b[:]); err != nil {
			return err
		}
		d.ri = int(binary.BigEndian.Uint16(b[:]))
		return nil
	case m == markerDNL:
		return fmt.Errorf("%w: DNL marker", ErrUnsupported)
	case m == markerAPP0 || m == markerAPPE:
		return d.app(m, n)
	}
	return d.skip(n) // APPn, COM and the rest
}

func (d *decoder) app(m byte, n int) error {
	var b [12]byte
	k := min(n, len(b))
	if err := d.readFull(b[:k]); err != nil {
		return err
	}
	switch {
	case m == markerAPP0 && k >= 5 && string(b[:5]) == "JFIF\x00":
		d.jfif = true
	case m == markerAPPE && k >= 12 && string(b[:5]) == "Adobe":
		d.adobe, d.adobeColour = true, b[11]
	}
	return d.skip(n - k)
}

func (d *decoder) sof(m byte, n int) error {
	if d.frame {
		return formatError("multiple SOF markers")
	}
	var b [6 + 3*4]byte
	if n != 6+3 && n != 6+9 {
		if n == 6+12 {
			return fmt.Errorf("%w: 4 components", ErrUnsupported)
		}
		return formatError("bad SOF length")
	}
	if err := d.readFull(b[:n]); err != nil {
		return err
	}
	if b[0] != 8 {
		return fmt.Errorf("%w: %d-bit precision", ErrUnsupported, b[0])
	}
	d.height = int(binary.BigEndian.Uint16(b[1:]))
	d.width = int(binary.BigEndian.Uint16(b[3:]))
	nc := int(b[5])
	if n != 6+3*nc {
		return formatError("SOF length inconsistent with its component count")
	}
	if d.width == 0 || d.height == 0 {
		return fmt.Errorf("%w: empty frame %dx%d (DNL)", ErrUnsupported, d.width, d.height)
	}
	if d.opts.MaxPixels > 0 && int64(d.width)*int64(d.height) > d.opts.MaxPixels {
		return fmt.Errorf("%w: %dx%d", ErrTooLarge, d.width, d.height)
	}
	d.comps = make([]component, nc)
	for i := range d.comps {
		c := &d.comps[i]
		c.id, c.h, c.v, c.tq = b[6+3*i], int(b[7+3*i]>>4), int(b[7+3*i]&15), b[8+3*i]
		for j := range i {
			if d.comps[j].id == c.id {
				return formatError("repeated component identifier")
			}
		}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return formatError("bad sampling factors")
		}
		if c.tq > 3 {
			return formatError("bad Tq value")
		}
		if nc == 1 {
			c.h, c.v = 1, 1 // a single component is never interleaved (A.2)
		}
	}
	if nc == 3 {
		y, cb, cr := d.comps[0], d.comps[1], d.comps[2]
		if y.h > 2 || y.v > 2 || cb.h != cr.h || cb.v != cr.v || y.h%cb.h != 0 || y.v%cb.v != 0 {
			return fmt.Errorf("%w: sampling %dx%d,%dx%d,%dx%d", ErrUnsupported, y.h, y.v, cb.h, cb.v, cr.h, cr.v)
		}
	}
	d.frame = true
	d.progressive = m == markerSOF2
	return nil
}

// isRGB is image/jpeg's rule for a 3-component frame that is RGB, not
// YCbCr.
func (d *decoder) isRGB() bool {
	if d.jfif {
		return false
	}
	if d.adobe && d.adobeColour == 0 {
		return true
	}
	return d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B'
}

// frameInfo returns the Frame of the decoder's SOF.
func (d *decoder) frameInfo() Frame {
	f := Frame{Progressive: d.progressive, Width: d.width, Height: d.height, Components: len(d.comps)}
	for i, c := range d.comps {
		f.H[i], f.V[i] = c.h, c.v
	}
	return f
}

// allocate sizes the components and allocates the planes and, for a
// progressive frame, the coefficients; once, at the first scan.
func (d *decoder) allocate() {
	h0, v0 := d.comps[0].h, d.comps[0].v
	d.mxx = (d.width + 8*h0 - 1) / (8 * h0)
	d.myy = (d.height + 8*v0 - 1) / (8 * v0)
	for i := range d.comps {
		c := &d.comps[i]
		c.bw, c.bh = d.mxx*c.h, d.myy*c.v
		c.cw = ((d.width*c.h+h0-1)/h0 + 7) / 8
		c.ch = ((d.height*c.v+v0-1)/v0 + 7) / 8
		c.scale = componentScale(d.scale, i, h0, v0, c.h, c.v)
		c.bs = 8 / c.scale
		c.pix = make([]byte, c.bw*c.bs*c.bh*c.bs)
		if d.progressive {
			if c.scale == 8 {
				c.coef = make([]int16, c.bw*c.bh)
			} else {
				c.coef = make([]int16, 64*c.bw*c.bh)
			}
		}
	}
}

func (d *decoder) dqt(n int) error {
	for n > 0 {
		pq, err := d.readByte()
		if err != nil {
			return err
		}
		n--
		tq := pq & 15
		if tq > 3 {
			return formatError("bad Tq value")
		}
		q := &d.quant[tq]
		switch pq >> 4 {
		case 0:
			if n < 64 {
				return formatError("DQT too short")
			}
			var b [64]byte
			if err := d.readFull(b[:]); err != nil {
				return err
			}
			for i, v := range b {
				q[zigzag[i]] = int32(v)
			}
			n -= 64
		case 1:
			if n < 128 {
				return formatError("DQT too short")
			}
			var b [128]byte
			if err := d.readFull(b[:]); err != nil {
				return err
			}
			for i := range 64 {
				q[zigzag[i]] = int32(binary.BigEndian.Uint16(b[2*i:]))
			}
			n -= 128
		default:
			return formatError("bad Pq value")
		}
	}
	return nil
}

func (d *decoder) dht(n int) error {
	for n > 0 {
		if n < 17 {
			return formatError("DHT too short")
		}
		var b [17]byte
		if err := d.readFull(b[:]); err != nil {
			return err
		}
		n -= 17
		tc, th := b[0]>>4, b[0]&15
		if tc > 1 || th > 3 {
			return formatError("bad Tc or Th value")
		}
		var counts [16]uint8
		copy(counts[:], b[1:])
		total := 0
		for _, c := range counts {
			total += int(c)
		}
		if total > 256 || total > n {
			return formatError("DHT has too many values")
		}
		var vals [256]uint8
		if err := d.readFull(vals[:total]); err != nil {
			return err
		}
		n -= total
		t := &d.dc[th]
		if tc == 1 {
			t = &d.ac[th]
		}
		if err := t.build(&counts, vals[:total]); err != nil {
			return err
		}
	}
	return nil
}

// finish assembles the planes into the image.
func (d *decoder) finish() (image.Image, error) {
	if d.progressive {
		d.reconstructAll()
	}
	w, h := (d.width+d.scale-1)/d.scale, (d.height+d.scale-1)/d.scale
	r := image.Rect(0, 0, w, h)
	y := &d.comps[0]
	if len(d.comps) == 1 {
		return &image.Gray{Pix: y.pix, Stride: y.bw * y.bs, Rect: r}, nil
	}
	cb := &d.comps[1]
	var ratio image.YCbCrSubsampleRatio
	switch (y.h*y.bs/(cb.h*cb.bs))<<4 | y.v*y.bs/(cb.v*cb.bs) {
	case 0x11:
		ratio = image.YCbCrSubsampleRatio444
	case 0x12:
		ratio = image.YCbCrSubsampleRatio440
	case 0x21:
		ratio = image.YCbCrSubsampleRatio422
	default:
		ratio = image.YCbCrSubsampleRatio420
	}
	return &image.YCbCr{
		Y: y.pix, Cb: d.comps[1].pix, Cr: d.comps[2].pix,
		YStride: y.bw * y.bs, CStride: cb.bw * cb.bs,
		SubsampleRatio: ratio, Rect: r,
	}, nil
}
