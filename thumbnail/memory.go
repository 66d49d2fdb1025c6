package thumbnail

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/casa-go/casa/internal/jpegdec"
)

// The memory a generation needs is estimated from the image header,
// before any pixel buffer is allocated, by mirroring what the decoders
// allocate (image/jpeg, image/png, image/gif, x/image/webp in the
// versions of go.mod) and what render allocates after them. Estimates
// err on the high side where the header cannot tell (a PNG that may carry
// a tRNS chunk, a VP8L stream whose transforms come later).

// blockBytes is what image/jpeg keeps for an 8x8 block of a progressive
// JPEG between scans: 64 int32 coefficients.
const blockBytes = 64 * 4

// overheadBytes covers the decoders' fixed buffers (Huffman and LZW
// tables, zlib window, read buffers) and the JPEG encoder of the output.
const overheadBytes = 1 << 20

// jpegComponent is a frame component: its id and sampling factors.
type jpegComponent struct {
	id   byte
	h, v int
}

// jpegFrame is what readJPEGHeader learns before the first scan.
type jpegFrame struct {
	marker        byte // SOFn
	precision     byte // bits a sample
	width, height int
	comps         []jpegComponent
	jfif          bool
	adobe         bool // an Adobe APP14 segment was seen
	adobeColour   byte // its transform byte
}

var errNoFrame = errors.New("no SOF0/SOF1/SOF2 frame header before the first scan")

// readJPEGHeader reads the marker segments of a JPEG from r (which starts
// at SOI) up to and including the header of the first scan (SOS), and
// returns the frame. It reads marker segments the way image/jpeg does,
// tolerating fill bytes and stray bytes between segments. A frame other
// than SOF0, SOF1 or SOF2 (lossless, hierarchical, arithmetic-coded) is
// ErrUnsupported: image/jpeg cannot decode it.
func readJPEGHeader(r io.Reader) (jpegFrame, error) {
	var f jpegFrame
	var tmp [2]byte
	if _, err := io.ReadFull(r, tmp[:]); err != nil {
		return f, err
	}
	if tmp != [2]byte{0xff, 0xd8} {
		return f, errors.New("missing SOI")
	}
	var one [1]byte
	for {
		// Find the next marker: skip stray bytes, then fill bytes.
		for one[0] = 0; one[0] != 0xff; {
			if _, err := io.ReadFull(r, one[:]); err != nil {
				return f, err
			}
		}
		for one[0] == 0xff {
			if _, err := io.ReadFull(r, one[:]); err != nil {
				return f, err
			}
		}
		marker := one[0]
		switch {
		case marker == 0x00: // a stuffed byte outside a scan: keep looking
			continue
		case marker == 0xd8 || marker == 0xd9 || 0xd0 <= marker && marker <= 0xd7:
			if marker == 0xd9 { // EOI before any scan
				if f.comps == nil {
					return f, errNoFrame
				}
				return f, nil
			}
			continue // no length
		}
		if _, err := io.ReadFull(r, tmp[:]); err != nil {
			return f, err
		}
		n := int(binary.BigEndian.Uint16(tmp[:])) - 2
		if n < 0 {
			return f, errors.New("short segment length")
		}
		seg := make([]byte, n)
		if _, err := io.ReadFull(r, seg); err != nil {
			return f, err
		}
		switch {
		case marker == 0xc0 || marker == 0xc1 || marker == 0xc2:
			if f.comps != nil {
				return f, errors.New("multiple SOF markers")
			}
			if err := f.parseSOF(marker, seg); err != nil {
				return f, err
			}
		case 0xc3 <= marker && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc:
			return f, fmt.Errorf("%w: JPEG frame type SOF%d", ErrUnsupported, marker-0xc0)
		case marker == 0xe0:
			if n >= 5 && string(seg[:5]) == "JFIF\x00" {
				f.jfif = true
			}
		case marker == 0xee:
			if n >= 12 && string(seg[:5]) == "Adobe" {
				f.adobe, f.adobeColour = true, seg[11]
			}
		case marker == 0xda:
			if f.comps == nil {
				return f, errNoFrame
			}
			return f, nil
		}
	}
}

func (f *jpegFrame) parseSOF(marker byte, seg []byte) error {
	if len(seg) < 6 || len(seg) != 6+3*int(seg[5]) {
		return errors.New("bad SOF length")
	}
	f.marker = marker
	if f.precision = seg[0]; f.precision != 8 {
		// image/jpeg decodes only 8-bit samples.
		return fmt.Errorf("%w: %d-bit JPEG", ErrUnsupported, f.precision)
	}
	f.height = int(binary.BigEndian.Uint16(seg[1:]))
	f.width = int(binary.BigEndian.Uint16(seg[3:]))
	n := int(seg[5])
	if n != 1 && n != 3 && n != 4 {
		return fmt.Errorf("%d components", n)
	}
	for i := range n {
		c := seg[6+3*i:]
		h, v := int(c[1]>>4), int(c[1]&15)
		if h < 1 || h > 4 || v < 1 || v > 4 {
			return errors.New("bad sampling factors")
		}
		if n == 1 {
			h, v = 1, 1 // as image/jpeg: a single component is never interleaved
		}
		f.comps = append(f.comps, jpegComponent{id: c[0], h: h, v: v})
	}
	return nil
}

// isRGB says whether image/jpeg converts this 3-component frame to RGBA.
func (f *jpegFrame) isRGB() bool {
	if f.jfif {
		return false
	}
	if f.adobe && f.adobeColour == 0 {
		return true
	}
	return len(f.comps) == 3 && f.comps[0].id == 'R' && f.comps[1].id == 'G' && f.comps[2].id == 'B'
}

// jpegDecodeBytes is what image/jpeg allocates to decode the frame f,
// which DecodeConfig has accepted, and whether the result is an
// *image.YCbCr.
func jpegDecodeBytes(f jpegFrame) (int64, bool) {
	w, h := int64(f.width), int64(f.height)
	h0, v0 := int64(f.comps[0].h), int64(f.comps[0].v)
	mxx, myy := (w+8*h0-1)/(8*h0), (h+8*v0-1)/(8*v0)
	var n int64
	ycbcr := false
	if len(f.comps) == 1 {
		n = 8 * mxx * 8 * myy // image.Gray
	} else {
		pw, ph := 8*h0*mxx, 8*v0*myy
		cw, ch := pw, ph
		switch h0 / int64(f.comps[1].h) {
		case 2:
			cw = (pw + 1) / 2
		case 4:
			cw = (pw + 3) / 4
		}
		if v0/int64(f.comps[1].v) == 2 {
			ch = (ph + 1) / 2
		}
		n = pw*ph + 2*cw*ch // image.YCbCr
		switch {
		case len(f.comps) == 4:
			c3 := f.comps[3]
			n += 8 * int64(c3.h) * mxx * 8 * int64(c3.v) * myy // the K plane
			n += 4 * w * h                                     // image.CMYK or RGBA
		case f.isRGB():
			n += 4 * w * h // image.RGBA
		default:
			ycbcr = true
		}
	}
	if f.marker == 0xc2 {
		// Progressive: the coefficients of every block of every component
		// are kept until the last scan.
		for _, c := range f.comps {
			n += mxx * myy * int64(c.h) * int64(c.v) * blockBytes
		}
	}
	return n, ycbcr
}

// pngDecodeBytes is what image/png allocates for the IHDR in hdr (the 13
// bytes after the chunk type). Grey and truecolour images count as if a
// tRNS chunk followed (it turns them into NRGBA or NRGBA64), since it
// comes after the header. An interlaced image counts double: the full
// image plus one image per pass, which together hold as many pixels.
func pngDecodeBytes(hdr []byte) (int64, error) {
	if len(hdr) < 13 {
		return 0, errors.New("short IHDR")
	}
	w, h := int64(binary.BigEndian.Uint32(hdr[0:])), int64(binary.BigEndian.Uint32(hdr[4:]))
	depth, colour, interlace := hdr[8], hdr[9], hdr[12]
	bpp := int64(4) // NRGBA or RGBA
	switch {
	case colour == 3: // paletted
		bpp = 1
	case depth == 16:
		bpp = 8 // NRGBA64 or RGBA64
	}
	n := w * h * bpp
	n += 2 * (w*8 + 1) // the current and previous row
	if interlace == 1 {
		n += w * h * bpp
	}
	return n, nil
}

// webpDecodeBytes is what x/image/webp allocates for the first chunk of a
// WebP file, given its header: the 4 bytes of the chunk type, its 4-byte
// length, and the payload that follows.
//   - VP8 (lossy): an image.YCbCr 4:2:0 of whole 16x16 macroblocks, per
//     macroblock state, and the partitions read into memory (the chunk).
//   - VP8L (lossless): 4 bytes a pixel, plus up to half that again when a
//     colour-indexing transform packs pixels, plus the transforms'
//     and the entropy image's sub-images (a quarter of the pixels each
//     at most): counted as 7 bytes a pixel.
//   - VP8X (extended): the canvas, as the costlier of VP8L and VP8 with a
//     VP8L-compressed alpha plane (4 + 1 bytes a pixel) beside it.
func webpDecodeBytes(chunk []byte, w, h int64) int64 {
	typ := string(chunk[:4])
	mbw, mbh := (w+15)/16, (h+15)/16
	vp8 := 16*mbw*16*mbh*3/2 + mbw*mbh*64
	switch typ {
	case "VP8 ":
		return vp8 + int64(binary.LittleEndian.Uint32(chunk[4:8]))
	case "VP8L":
		return 7 * w * h
	}
	return max(7*w*h, vp8+5*w*h)
}

// renderBytes is what render allocates to turn a decoded w x h image
// into a tw x th thumbnail; ycbcr says whether the image is an
// *image.YCbCr (pre-shrunk on its planes with no intermediate).
func renderBytes(w, h, tw, th int, ycbcr bool) int64 {
	sw, sh := int64(w), int64(h) // the image the final filter reads
	var n int64
	if f := shrinkFactor(w, h, tw, th); f >= 2 {
		sw, sh = int64((w+f-1)/f), int64((h+f-1)/f)
		if !ycbcr {
			n += 4 * sw * int64(h) // imaging's horizontal pass
		}
		n += 4 * sw * sh
	}
	if sw != int64(tw) || sh != int64(th) {
		n += 4 * int64(tw) * sh // horizontal pass of the final filter
	}
	n += 3 * 4 * int64(tw) * int64(th) // result, orientation copy, JPEG buffer
	return n
}

// shrinkable says whether jpegdec decodes the frame f: baseline or
// progressive, gray or YCbCr (not RGB) with chroma at 1/1 or 1/2 of luma
// in each direction. The rest (CMYK, YCCK, Adobe RGB, SOF1, 4:1:1) goes
// to image/jpeg at full size.
func shrinkable(f jpegFrame) bool {
	if f.marker != 0xc0 && f.marker != 0xc2 {
		return false
	}
	switch len(f.comps) {
	case 1:
		return true
	case 3:
		y, cb, cr := f.comps[0], f.comps[1], f.comps[2]
		return !f.isRGB() && y.h <= 2 && y.v <= 2 && cb.h == cr.h && cb.v == cr.v &&
			y.h%cb.h == 0 && y.v%cb.v == 0
	}
	return false
}

// jpegScale is the reduction to decode f at for a size x size thumbnail:
// the largest of 8, 4 and 2 that leaves the decoded image at least the
// thumbnail's size in both directions, or 1 (a full decode by image/jpeg)
// when none does or jpegdec cannot decode f. EXIF orientation needs no
// special case: the thumbnail's bound is square, so a transposed image
// gets the transposed target (fit is symmetric) and the same scale.
func jpegScale(f jpegFrame, size int) int {
	if !shrinkable(f) {
		return 1
	}
	tw, th := fit(f.width, f.height, size)
	for _, s := range []int{8, 4, 2} {
		if (f.width+s-1)/s >= tw && (f.height+s-1)/s >= th {
			return s
		}
	}
	return 1
}

// jpegdecFrame is f as jpegdec describes it.
func jpegdecFrame(f jpegFrame) jpegdec.Frame {
	df := jpegdec.Frame{Progressive: f.marker == 0xc2, Width: f.width, Height: f.height, Components: len(f.comps)}
	for i, c := range f.comps {
		df.H[i], df.V[i] = c.h, c.v
	}
	return df
}

// jpegdecBytes is what jpegdec allocates to decode f at scale (its
// planes, a progressive frame's coefficients, its tables and read
// buffer), and whether the result is an *image.YCbCr.
func jpegdecBytes(f jpegFrame, scale int) (int64, bool) {
	return jpegdecFrame(f).Bytes(scale), len(f.comps) == 3
}
