package jpegdec

import (
	"errors"
	"io"
)

// lutBits is how many bits the Huffman lookup table resolves at once;
// longer codes take the slow path of section F.2.2.3.
const lutBits = 9

// huffTable is a Huffman table (section C, Annex K.2's canonical codes).
type huffTable struct {
	defined bool
	// lut maps the next lutBits bits to value<<8 | code length, or 0 when
	// the code is longer than lutBits.
	lut     [1 << lutBits]uint16
	maxCode [17]int32 // the largest code of each length, -1 if none
	valPtr  [17]int32 // index in vals of the first code of each length, minus that code
	vals    [256]uint8
}

var (
	errBadHuffman = errors.New("jpegdec: bad Huffman table")
	errBadCode    = errors.New("jpegdec: bad Huffman code")
	errShortData  = errors.New("jpegdec: short entropy-coded data")
)

// build sets the table from the 16 code counts and the values of a DHT
// segment (section B.2.4.2), generating the codes as Annex C does.
func (h *huffTable) build(counts *[16]uint8, vals []uint8) error {
	*h = huffTable{}
	total := 0
	for _, c := range counts {
		total += int(c)
	}
	if total == 0 || total > 256 || total != len(vals) {
		return errBadHuffman
	}
	copy(h.vals[:], vals)
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.maxCode[l] = -1
		if n > 0 {
			h.valPtr[l] = k - code
			for range n {
				if code >= 1<<l {
					// More codes of length l than l bits hold: checked
					// before the code indexes lut.
					return errBadHuffman
				}
				if l <= lutBits {
					// Every lutBits-bit string starting with this code.
					shift := uint(lutBits - l)
					base := code << shift
					entry := uint16(h.vals[k])<<8 | uint16(l)
					for i := range int32(1) << shift {
						h.lut[base+i] = entry
					}
				}
				code++
				k++
			}
			h.maxCode[l] = code - 1
		}
		// (A code of all ones is left out of real tables; a full code
		// space is tolerated, as libjpeg does.)
		code <<= 1
	}
	h.defined = true
	return nil
}

// bitReader reads the entropy-coded segments: byte-stuffed bits, ended by
// a marker. Past a marker (or the end of the input) it feeds zero bits, as
// libjpeg does, and counts them; consuming one is an error (errShortData),
// checked once a block.
type bitReader struct {
	r      io.Reader
	buf    []byte
	i, n   int    // buf[i:n] is unread
	acc    uint64 // the low nbits bits are unread, most significant first
	nbits  uint
	fake   uint  // the last fake bits of acc are zero padding
	marker int   // the marker that ended the data, markerEOF, or 0
	err    error // a read error other than the end of the input
}

// markerEOF stands for the end of the input in bitReader.marker.
const markerEOF = 0x100

// more refills buf; it returns false at the end of the input or on error.
func (b *bitReader) more() bool {
	if b.err != nil {
		return false
	}
	for tries := 0; tries < 100; tries++ {
		n, err := b.r.Read(b.buf)
		if n > 0 {
			b.i, b.n = 0, n
			return true
		}
		if err != nil {
			if err != io.EOF {
				b.err = err
			}
			return false
		}
	}
	b.err = io.ErrNoProgress
	return false
}

// readByte reads one byte of the input (marker segments, not the
// entropy-coded data).
func (b *bitReader) readByte() (byte, error) {
	if b.i == b.n && !b.more() {
		return 0, b.readErr()
	}
	c := b.buf[b.i]
	b.i++
	return c, nil
}

func (b *bitReader) readErr() error {
	if b.err != nil {
		return b.err
	}
	return io.ErrUnexpectedEOF
}

// readFull fills p from the input.
func (b *bitReader) readFull(p []byte) error {
	for len(p) > 0 {
		if b.i == b.n && !b.more() {
			return b.readErr()
		}
		k := copy(p, b.buf[b.i:b.n])
		b.i += k
		p = p[k:]
	}
	return nil
}

// skip discards n bytes of the input.
func (b *bitReader) skip(n int) error {
	for n > 0 {
		if b.i == b.n && !b.more() {
			return b.readErr()
		}
		k := min(n, b.n-b.i)
		b.i += k
		n -= k
	}
	return nil
}

// fill tops acc up to more than 56 bits. It fails only on a read error.
func (b *bitReader) fill() error {
	for b.nbits <= 56 {
		if b.marker != 0 {
			b.acc <<= 8
			b.nbits += 8
			b.fake += 8
			continue
		}
		if b.i == b.n && !b.more() {
			if b.err != nil {
				return b.err
			}
			b.marker = markerEOF
			continue
		}
		c := b.buf[b.i]
		b.i++
		if c == 0xff {
			// 0xff 0x00 is a stuffed 0xff; 0xff then fill bytes then
			// anything else is a marker.
			var c2 byte
			for {
				if b.i == b.n && !b.more() {
					if b.err != nil {
						return b.err
					}
					c2 = 0
					b.marker = markerEOF
					break
				}
				c2 = b.buf[b.i]
				b.i++
				if c2 != 0xff {
					break
				}
			}
			if b.marker != 0 {
				continue
			}
			if c2 != 0 {
				b.marker = int(c2)
				continue
			}
		}
		b.acc = b.acc<<8 | uint64(c)
		b.nbits += 8
	}
	return nil
}

// short reports whether padding bits past the data were consumed.
func (b *bitReader) short() bool { return b.nbits < b.fake }

// reset drops the buffered bits, at a restart marker or the end of a scan.
func (b *bitReader) reset() {
	b.acc, b.nbits, b.fake = 0, 0, 0
}

// decodeHuff reads one Huffman-coded value.
func (b *bitReader) decodeHuff(h *huffTable) (uint8, error) {
	if b.nbits < 16 {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	if v := h.lut[(b.acc>>(b.nbits-lutBits))&(1<<lutBits-1)]; v != 0 {
		b.nbits -= uint(v & 0xff)
		return uint8(v >> 8), nil
	}
	code := int32(b.acc>>(b.nbits-16)) & 0xffff
	for l := uint(lutBits + 1); l <= 16; l++ {
		c := code >> (16 - l)
		if c <= h.maxCode[l] {
			b.nbits -= l
			return h.vals[(h.valPtr[l]+c)&0xff], nil
		}
	}
	return 0, errBadCode
}

// bits reads n (0..16) raw bits.
func (b *bitReader) bits(n uint) (int32, error) {
	if b.nbits < n {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	b.nbits -= n
	return int32(b.acc>>b.nbits) & (1<<n - 1), nil
}

// receiveExtend reads the s (0..15) extra bits of a value of category s
// and extends their sign (section F.2.2.1, RECEIVE and EXTEND).
func (b *bitReader) receiveExtend(s uint8) (int32, error) {
	if s == 0 {
		return 0, nil
	}
	v, err := b.bits(uint(s))
	if err != nil {
		return 0, err
	}
	if v < 1<<(s-1) {
		v -= 1<<s - 1
	}
	return v, nil
}

// nextMarker discards bytes up to the next marker and returns it (after
// a scan: the marker that ended the entropy-coded data, if one did).
func (b *bitReader) nextMarker() (byte, error) {
	if b.marker != 0 {
		m := b.marker
		b.marker = 0
		b.reset()
		if m == markerEOF {
			return 0, io.ErrUnexpectedEOF
		}
		return byte(m), nil
	}
	b.reset()
	for {
		c, err := b.readByte()
		if err != nil {
			return 0, err
		}
		if c != 0xff {
			continue
		}
		for c == 0xff {
			if c, err = b.readByte(); err != nil {
				return 0, err
			}
		}
		if c != 0 {
			return c, nil
		}
	}
}
