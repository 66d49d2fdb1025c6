package imagetest

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// ProgressivePhoto returns a real progressive (SOF2) JPEG of Photo(w, h),
// 4:2:0, with the quantisation and Huffman tables image/jpeg writes at
// quality 90 (so the same coefficients cost about what they cost in
// JPEG(w, h)): image/jpeg writes only baseline files. Its scans use
// spectral selection without successive approximation: all DC
// coefficients in one interleaved scan, then for each component the AC
// band 1..5 and the band 6..63, each block ended by its own end-of-band.
// (internal/jpegdec's testdata has cjpeg-made files with successive
// approximation.)
func ProgressivePhoto(w, h int) []byte {
	base := JPEG(w, h)
	var dqt, dht [][]byte
	for i := 2; i+4 <= len(base) && base[i] == 0xff; {
		m := base[i+1]
		n := int(binary.BigEndian.Uint16(base[i+2:]))
		seg := base[i : i+2+n]
		switch m {
		case 0xdb:
			dqt = append(dqt, seg)
		case 0xc4:
			dht = append(dht, seg)
		}
		if m == 0xda {
			break
		}
		i += 2 + n
	}
	var quant [2][64]float64
	for _, seg := range dqt {
		p := seg[4:]
		for len(p) >= 65 {
			for k := range 64 {
				quant[p[0]&1][progZigzag[k]] = float64(p[1+k])
			}
			p = p[65:]
		}
	}
	var codes [2][2]progCodes // [class][id]
	for _, seg := range dht {
		p := seg[4:]
		for len(p) >= 17 {
			tc, th := p[0]>>4, p[0]&1
			n := 0
			for _, c := range p[1:17] {
				n += int(c)
			}
			codes[tc][th] = newProgCodes(p[1:17], p[17:17+n])
			p = p[17+n:]
		}
	}

	m := Photo(w, h)
	mxx, myy := (w+15)/16, (h+15)/16
	type comp struct {
		plane          []byte
		pw, ph, stride int
		bw, bh, cw, ch int
		q              *[64]float64
		dc, ac         *progCodes
		coef           [][64]int32
	}
	cw, ch := (w+1)/2, (h+1)/2
	comps := []*comp{
		{plane: m.Y, pw: w, ph: h, stride: m.YStride, bw: 2 * mxx, bh: 2 * myy, cw: (w + 7) / 8, ch: (h + 7) / 8, q: &quant[0], dc: &codes[0][0], ac: &codes[1][0]},
		{plane: m.Cb, pw: cw, ph: ch, stride: m.CStride, bw: mxx, bh: myy, cw: (cw + 7) / 8, ch: (ch + 7) / 8, q: &quant[1], dc: &codes[0][1], ac: &codes[1][1]},
		{plane: m.Cr, pw: cw, ph: ch, stride: m.CStride, bw: mxx, bh: myy, cw: (cw + 7) / 8, ch: (ch + 7) / 8, q: &quant[1], dc: &codes[0][1], ac: &codes[1][1]},
	}
	var cosTab [8][8]float64 // C(u)/2 * cos((2x+1)u pi/16)
	for u := range 8 {
		cu := 1.0
		if u == 0 {
			cu = 1 / math.Sqrt2
		}
		for x := range 8 {
			cosTab[u][x] = cu / 2 * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16)
		}
	}
	for _, c := range comps {
		c.coef = make([][64]int32, c.bw*c.bh)
		var f, tmp [64]float64
		for by := range c.bh {
			for bx := range c.bw {
				for y := range 8 {
					for x := range 8 {
						sx, sy := min(bx*8+x, c.pw-1), min(by*8+y, c.ph-1)
						f[y*8+x] = float64(c.plane[sy*c.stride+sx]) - 128
					}
				}
				for y := range 8 { // rows
					for u := range 8 {
						var s float64
						for x := range 8 {
							s += cosTab[u][x] * f[y*8+x]
						}
						tmp[y*8+u] = s
					}
				}
				out := &c.coef[by*c.bw+bx]
				for u := range 8 { // columns
					for v := range 8 {
						var s float64
						for y := range 8 {
							s += cosTab[v][y] * tmp[y*8+u]
						}
						out[v*8+u] = int32(math.Round(s / c.q[v*8+u]))
					}
				}
			}
		}
	}

	var b bytes.Buffer
	b.Write([]byte{0xff, 0xd8})
	for _, seg := range dqt {
		b.Write(seg)
	}
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1}
	writeJPEGSegment(&b, 0xc2, sof)
	for _, seg := range dht {
		b.Write(seg)
	}
	// The DC scan, interleaved: 2x2 Y blocks, then Cb, then Cr, per MCU.
	writeJPEGSegment(&b, 0xda, []byte{3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 0, 0})
	var bw progBits
	var pred [3]int32
	for my := range myy {
		for mx := range mxx {
			for ci, c := range comps {
				n := 1
				if ci == 0 {
					n = 2
				}
				for j := range n * n {
					bx, by := mx*n+j%n, my*n+j/n
					dc := c.coef[by*c.bw+bx][0]
					bw.value(c.dc, 0, dc-pred[ci])
					pred[ci] = dc
				}
			}
		}
	}
	bw.flush(&b)
	// The AC bands, one component a scan, over the component's own blocks.
	for _, band := range [][2]int{{1, 5}, {6, 63}} {
		for ci, c := range comps {
			writeJPEGSegment(&b, 0xda, []byte{1, byte(ci + 1), c.ac.tables(ci), byte(band[0]), byte(band[1]), 0})
			for by := range c.ch {
				for bx := range c.cw {
					blk := &c.coef[by*c.bw+bx]
					run := 0
					for k := band[0]; k <= band[1]; k++ {
						v := blk[progZigzag[k]]
						if v == 0 {
							run++
							continue
						}
						for ; run > 15; run -= 16 {
							bw.symbol(c.ac, 0xf0)
						}
						bw.value(c.ac, run, v)
						run = 0
					}
					if run > 0 {
						bw.symbol(c.ac, 0x00) // end of band
					}
				}
			}
			bw.flush(&b)
		}
	}
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// progZigzag maps zig-zag order to natural order.
var progZigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// progCodes is a Huffman table for encoding: each symbol's code and
// length (0 when absent), generated as T.81 Annex C does.
type progCodes struct {
	code [256]uint16
	size [256]uint8
}

func newProgCodes(counts, vals []byte) progCodes {
	var t progCodes
	code, k := uint16(0), 0
	for l := 1; l <= 16; l++ {
		for range counts[l-1] {
			t.code[vals[k]], t.size[vals[k]] = code, uint8(l)
			code++
			k++
		}
		code <<= 1
	}
	return t
}

// tables returns the SOS table selector byte for component ci: image/jpeg
// uses tables 0 for Y and 1 for chroma.
func (*progCodes) tables(ci int) byte {
	if ci == 0 {
		return 0x00
	}
	return 0x11
}

// progBits writes byte-stuffed bits.
type progBits struct {
	out  []byte
	acc  uint32
	nacc uint
}

func (w *progBits) put(v uint32, n uint) {
	w.acc = w.acc<<n | v&(1<<n-1)
	w.nacc += n
	for w.nacc >= 8 {
		c := byte(w.acc >> (w.nacc - 8))
		w.out = append(w.out, c)
		if c == 0xff {
			w.out = append(w.out, 0)
		}
		w.nacc -= 8
	}
}

func (w *progBits) symbol(t *progCodes, s byte) {
	if t.size[s] == 0 {
		panic("imagetest: symbol missing from the Huffman table")
	}
	w.put(uint32(t.code[s]), uint(t.size[s]))
}

// value writes the symbol run<<4 | size(v) and v's extra bits (F.1.2).
func (w *progBits) value(t *progCodes, run int, v int32) {
	a := v
	if a < 0 {
		a = -a
		v--
	}
	s := uint(bits.Len32(uint32(a)))
	w.symbol(t, byte(run<<4)|byte(s))
	if s > 0 {
		w.put(uint32(v), s)
	}
}

// flush pads the last byte with 1 bits and appends the data to b.
func (w *progBits) flush(b *bytes.Buffer) {
	if w.nacc > 0 {
		w.put(1<<(8-w.nacc)-1, 8-w.nacc)
	}
	b.Write(w.out)
	w.out, w.acc, w.nacc = w.out[:0], 0, 0
}
