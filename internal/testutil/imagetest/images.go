// Package imagetest builds image fixtures for tests: small JPEG, PNG, GIF and
// WebP files with known colours and EXIF orientations, a PDF, damaged
// copies, and hostile files (decompression bombs, hand-built progressive
// JPEGs and interlaced PNGs) that cost a decoder far more than their size.
package imagetest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
)

// Fixture colours. JPEGWithOrientation paints its quadrants with them so
// that a test can tell where each corner of the stored image ended up.
var (
	Red   = color.NRGBA{R: 230, G: 20, B: 20, A: 255}
	Green = color.NRGBA{R: 20, G: 200, B: 20, A: 255}
	Blue  = color.NRGBA{R: 20, G: 20, B: 230, A: 255}
	White = color.NRGBA{R: 255, G: 255, B: 255, A: 255}
)

// Photo returns a deterministic w x h image with photo-like content:
// smooth gradients, a few soft shapes and fine noise, so that a JPEG of it
// costs what a real photo costs to decode (flat colour would not).
func Photo(w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	rng := rand.New(rand.NewPCG(1, 2))
	cx, cy := float64(w)*0.6, float64(h)*0.4
	r2 := float64(w*w+h*h) / 16
	for y := 0; y < h; y++ {
		row := m.Y[y*m.YStride : y*m.YStride+w]
		for x := range row {
			dx, dy := float64(x)-cx, float64(y)-cy
			v := 40 + 120*x/max(w, 1) + 60*y/max(h, 1)
			if dx*dx+dy*dy < r2 {
				v += 40
			}
			v += int(rng.Uint32()%24) - 12
			row[x] = uint8(min(max(v, 0), 255))
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	for y := 0; y < ch; y++ {
		for x := 0; x < cw; x++ {
			i := y*m.CStride + x
			m.Cb[i] = uint8(96 + 64*x/max(cw, 1) + int(rng.Uint32()%8))
			m.Cr[i] = uint8(160 - 64*y/max(ch, 1) + int(rng.Uint32()%8))
		}
	}
	return m
}

// JPEG returns a deterministic baseline JPEG (quality 90) of Photo(w, h).
func JPEG(w, h int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, Photo(w, h), &jpeg.Options{Quality: 90}); err != nil {
		panic(err) // cannot happen when writing to a bytes.Buffer
	}
	return b.Bytes()
}

// Quadrants returns a w x h image whose top-left quadrant is Red, top-right
// Green, bottom-left Blue and bottom-right White.
func Quadrants(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := Red
			switch {
			case x >= w/2 && y < h/2:
				c = Green
			case x < w/2 && y >= h/2:
				c = Blue
			case x >= w/2 && y >= h/2:
				c = White
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// JPEGWithOrientation returns a JPEG of Quadrants(w, h) carrying an APP1
// Exif segment (big-endian TIFF) whose IFD0 holds the orientation tag
// 0x0112 set to orient (1..8 are meaningful; other values are written as
// given).
func JPEGWithOrientation(w, h, orient int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, Quadrants(w, h), &jpeg.Options{Quality: 95}); err != nil {
		panic(err)
	}
	return InsertAPP1(b.Bytes(), ExifOrientation(orient))
}

// ExifOrientation returns the payload of an APP1 Exif segment ("Exif\0\0"
// and a big-endian TIFF structure) whose IFD0 has one entry: the
// orientation tag with value orient.
func ExifOrientation(orient int) []byte {
	var p bytes.Buffer
	p.WriteString("Exif\x00\x00")
	p.WriteString("MM\x00\x2a")                       // big-endian TIFF, magic 42
	_ = binary.Write(&p, binary.BigEndian, uint32(8)) // IFD0 offset
	_ = binary.Write(&p, binary.BigEndian, uint16(1)) // one entry
	_ = binary.Write(&p, binary.BigEndian, uint16(0x0112))
	_ = binary.Write(&p, binary.BigEndian, uint16(3)) // SHORT
	_ = binary.Write(&p, binary.BigEndian, uint32(1)) // count
	_ = binary.Write(&p, binary.BigEndian, uint16(orient))
	_ = binary.Write(&p, binary.BigEndian, uint16(0)) // padding of the value field
	_ = binary.Write(&p, binary.BigEndian, uint32(0)) // no next IFD
	return p.Bytes()
}

// InsertAPP1 returns a copy of the JPEG jpg with an APP1 segment holding
// payload inserted right after the SOI marker. It panics if jpg does not
// start with SOI or payload does not fit in one segment.
func InsertAPP1(jpg, payload []byte) []byte {
	if len(jpg) < 2 || jpg[0] != 0xff || jpg[1] != 0xd8 {
		panic("imagetest: InsertAPP1: not a JPEG")
	}
	if len(payload)+2 > 0xffff {
		panic("imagetest: InsertAPP1: payload too large")
	}
	out := make([]byte, 0, len(jpg)+4+len(payload))
	out = append(out, 0xff, 0xd8, 0xff, 0xe1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(payload)+2))
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// PNGWithAlpha returns a w x h NRGBA PNG whose left half is fully
// transparent (with black colour values underneath) and whose right half
// is opaque Red.
func PNGWithAlpha(w, h int) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := w / 2; x < w; x++ {
			m.SetNRGBA(x, y, Red)
		}
	}
	return encodePNG(m)
}

// PNG returns an opaque PNG of Quadrants(w, h).
func PNG(w, h int) []byte { return encodePNG(Quadrants(w, h)) }

func encodePNG(m image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// GIF returns a two-frame animated w x h GIF: the first frame is Green,
// the second Blue. A decoder that takes the first frame sees green.
func GIF(w, h int) []byte {
	pal := color.Palette{Green, Blue}
	g := &gif.GIF{Config: image.Config{Width: w, Height: h, ColorModel: pal}}
	for i := range 2 {
		f := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for j := range f.Pix {
			f.Pix[j] = uint8(i)
		}
		g.Image = append(g.Image, f)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// PNGBomb returns a few dozen bytes that form a PNG whose IHDR claims
// w x h 8-bit RGBA pixels, followed by a tiny IDAT and IEND: a
// decompression bomb's header. A decoder that trusts the header before
// checking a pixel limit allocates w*h*4 bytes.
func PNGBomb(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // depth 8, RGBA, deflate, no filter, no interlace
	writePNGChunk(&b, "IHDR", ihdr)
	// zlib stream of a few zero bytes: far fewer than the header promises.
	writePNGChunk(&b, "IDAT", []byte{0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01})
	writePNGChunk(&b, "IEND", nil)
	return b.Bytes()
}

func writePNGChunk(b *bytes.Buffer, typ string, data []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	b.WriteString(typ)
	b.Write(data)
	_ = binary.Write(b, binary.BigEndian, crc.Sum32())
}

// WebP returns a lossless (VP8L) WebP of w x h pixels, all of colour c,
// built by hand: x/image/webp has no encoder. Every pixel is coded with
// zero bits (single-symbol prefix codes), so the file is a few dozen bytes
// whatever w and h (1..16384) claim.
func WebP(w, h int, c color.NRGBA) []byte {
	var bw bitWriter
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	alpha := uint32(0)
	if c.A != 255 {
		alpha = 1
	}
	bw.write(alpha, 1)
	bw.write(0, 3) // version
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	// Five prefix codes, in order green, red, blue, alpha, distance: each a
	// "simple" code with one 8-bit symbol.
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // symbol uses 8 bits
		bw.write(uint32(sym), 8)
	}
	data := append([]byte{0x2f}, bw.bytes()...)
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(4+8+len(data)))
	b.WriteString("WEBPVP8L")
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// bitWriter writes LSB-first bits, as VP8L reads them.
type bitWriter struct {
	buf  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) write(v uint32, n uint) {
	w.acc |= uint64(v&(1<<n-1)) << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nacc > 0 {
		return append(w.buf, byte(w.acc))
	}
	return w.buf
}

// Truncated returns the first half of b: a file cut off in transfer.
func Truncated(b []byte) []byte { return bytes.Clone(b[:len(b)/2]) }

// Corrupt returns a copy of b whose second half is overwritten with a
// deterministic pattern of invalid marker bytes (0xff 0x01 ...): the
// header still parses, the data does not.
func Corrupt(b []byte) []byte {
	c := bytes.Clone(b)
	for i := len(c) / 2; i < len(c); i++ {
		if i%2 == 0 {
			c[i] = 0xff
		} else {
			c[i] = 0x01
		}
	}
	return c
}

// PDF returns a minimal PDF document: a common upload that is no image.
func PDF() []byte {
	return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n" +
		"trailer << /Root 1 0 R >>\n%%EOF\n")
}
