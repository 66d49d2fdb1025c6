package jpegdec

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// scanComp is a component of a scan with its tables.
type scanComp struct {
	c      *component
	ci     int
	dc, ac *huffTable
}

// scan decodes one scan (section B.2.3, the SOS segment, then its
// entropy-coded data; Annex F for sequential, Annex G for progressive).
func (d *decoder) scan() error {
	var lb [2]byte
	if err := d.readFull(lb[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(lb[:])) - 2
	var b [1 + 2*4 + 3]byte
	if n < 6 || n > len(b) {
		return formatError("bad SOS length")
	}
	if err := d.readFull(b[:n]); err != nil {
		return err
	}
	ns := int(b[0])
	if ns < 1 || ns > len(d.comps) || n != 4+2*ns {
		return formatError("bad SOS component count")
	}
	var sc [3]scanComp
	blocksPerMCU := 0
	for i := range ns {
		id, tables := b[1+2*i], b[2+2*i]
		ci := -1
		for j := range d.comps {
			if d.comps[j].id == id {
				ci = j
			}
		}
		if ci < 0 {
			return formatError("unknown component selector")
		}
		for j := range i {
			if sc[j].ci == ci {
				return formatError("repeated component selector")
			}
		}
		td, ta := tables>>4, tables&15
		if td > 3 || ta > 3 {
			return formatError("bad Td or Ta value")
		}
		sc[i] = scanComp{c: &d.comps[ci], ci: ci, dc: &d.dc[td], ac: &d.ac[ta]}
		blocksPerMCU += d.comps[ci].h * d.comps[ci].v
	}
	if ns > 1 && blocksPerMCU > 10 {
		return formatError("too many blocks in an MCU")
	}
	ss, se, ah, al := 0, 63, 0, 0
	if d.progressive {
		ss, se = int(b[1+2*ns]), int(b[2+2*ns])
		ah, al = int(b[3+2*ns]>>4), int(b[3+2*ns]&15)
		if ss == 0 && se != 0 || ss > se || se > 63 {
			return formatError("bad spectral selection")
		}
		if ss != 0 && ns != 1 {
			return formatError("interleaved AC scan")
		}
		if ah != 0 && ah != al+1 || al > 13 {
			return formatError("bad successive approximation")
		}
	}
	if d.comps[0].pix == nil {
		// At the first scan every APPn segment before it has been seen
		// (a JFIF APP0 may follow the frame header), as image/jpeg sees
		// them when it decides.
		if len(d.comps) == 3 && d.isRGB() {
			return fmt.Errorf("%w: RGB", ErrUnsupported)
		}
		d.allocate()
	}
	// Tables the scan uses must be defined.
	needDC := !d.progressive || ss == 0 && ah == 0
	needAC := !d.progressive || ss > 0 && sc[0].c.scale != 8
	for i := range ns {
		if needDC && !sc[i].dc.defined || needAC && !sc[i].ac.defined {
			return formatError("undefined Huffman table")
		}
	}
	if d.progressive && ss > 0 && sc[0].c.scale == 8 {
		// At 1/8 only the DC coefficients matter: skip AC scans unread.
		return d.skipScan()
	}

	d.reset()
	d.eobRun = 0
	var pred [3]int32
	var blk [64]int32
	mcus, mw := d.mxx*d.myy, d.mxx
	if ns == 1 {
		mcus, mw = sc[0].c.cw*sc[0].c.ch, sc[0].c.cw
	}
	for mcu := range mcus {
		mx, my := mcu%mw, mcu/mw
		if d.ri > 0 && mcu > 0 && mcu%d.ri == 0 {
			if err := d.restart(); err != nil {
				return err
			}
			pred = [3]int32{}
			d.eobRun = 0
		}
		for i := range ns {
			s := &sc[i]
			c := s.c
			hb, vb := c.h, c.v
			if ns == 1 {
				hb, vb = 1, 1
			}
			for j := range hb * vb {
				bx, by := mx*hb+j%hb, my*vb+j/hb
				var err error
				switch {
				case !d.progressive && c.scale == 8:
					var dc int32
					dc, err = d.blockDC(s, &pred[i])
					if err == nil {
						off := by*c.bw + bx
						c.pix[off] = idct1(dc, d.quant[c.tq][0])
					}
				case !d.progressive:
					blk = [64]int32{}
					if err = d.blockBaseline(&blk, s, &pred[i]); err == nil {
						d.reconstruct(c, &blk, bx, by)
					}
				case ss == 0 && ah == 0:
					err = d.progressiveDCFirst(c, s, &pred[i], bx, by, al)
				case ss == 0:
					err = d.progressiveDCRefine(c, bx, by, al)
				case ah == 0:
					err = d.progressiveACFirst(c.coef[64*(by*c.bw+bx):][:64], s.ac, ss, se, al)
				default:
					err = d.progressiveACRefine(c.coef[64*(by*c.bw+bx):][:64], s.ac, ss, se, al)
				}
				if err != nil {
					return err
				}
				if d.short() {
					return errShortData
				}
			}
		}
	}
	return nil
}

// restart expects an RSTn marker (section F.1.2.3 for sequential, G.1.2
// for progressive) and resets the bit reader; the caller resets the DC
// predictions and the end-of-band run.
func (d *decoder) restart() error {
	m, err := d.nextMarker()
	if err != nil {
		return err
	}
	if m < markerRST0 || m > markerRST7 {
		return formatError("missing RST marker")
	}
	return nil
}

// skipScan discards entropy-coded data up to the marker after it (RSTn
// markers inside it included), and leaves that marker for nextMarker.
func (d *decoder) skipScan() error {
	d.reset()
	for {
		if d.marker == 0 {
			// Jump to the next 0xff in the buffer.
			for {
				if d.i == d.n && !d.more() {
					return d.readErr()
				}
				if k := bytes.IndexByte(d.buf[d.i:d.n], 0xff); k >= 0 {
					d.i += k
					break
				}
				d.i = d.n
			}
		}
		m, err := d.nextMarker()
		if err != nil {
			return err
		}
		if m < markerRST0 || m > markerRST7 {
			d.marker = int(m)
			return nil
		}
	}
}

// huff reads one Huffman-coded value, with the table lookup inline.
func (d *decoder) huff(h *huffTable) (uint8, error) {
	if d.nbits < 32 {
		if err := d.fill(); err != nil {
			return 0, err
		}
	}
	if v := h.lut[(d.acc>>(d.nbits-lutBits))&(1<<lutBits-1)]; v != 0 {
		d.nbits -= uint(v & 0xff)
		return uint8(v >> 8), nil
	}
	return d.decodeHuff(h)
}

// dcDiff reads a DC difference (section F.2.2.1).
func (d *decoder) dcDiff(h *huffTable) (int32, error) {
	t, err := d.huff(h)
	if err != nil {
		return 0, err
	}
	if t > 16 {
		return 0, formatError("excessive DC category")
	}
	if t == 16 {
		return d.receiveExtend16()
	}
	return d.receiveExtend(t)
}

// receiveExtend16 is EXTEND of a 16-bit category, which image/jpeg accepts.
func (d *decoder) receiveExtend16() (int32, error) {
	v, err := d.bits(16)
	if err != nil {
		return 0, err
	}
	if v < 1<<15 {
		v -= 1<<16 - 1
	}
	return v, nil
}

// blockBaseline decodes the 64 coefficients of a sequential block into
// blk, in natural order (section F.2.2).
func (d *decoder) blockBaseline(blk *[64]int32, s *scanComp, pred *int32) error {
	diff, err := d.dcDiff(s.dc)
	if err != nil {
		return err
	}
	*pred += diff
	blk[0] = *pred
	ac := s.ac
	for k := 1; k < 64; {
		if d.nbits < 32 {
			if err := d.fill(); err != nil {
				return err
			}
		}
		var sym uint8
		if v := ac.lut[(d.acc>>(d.nbits-lutBits))&(1<<lutBits-1)]; v != 0 {
			d.nbits -= uint(v & 0xff)
			sym = uint8(v >> 8)
		} else if sym, err = d.decodeHuff(ac); err != nil {
			return err
		}
		r, sz := int(sym>>4), uint(sym&15)
		if sz == 0 {
			if r != 15 {
				d.eobn = d.eobn || r != 0
				break // end of block
			}
			k += 16
			continue
		}
		k += r
		if k > 63 {
			break
		}
		// RECEIVE and EXTEND inline: nbits >= 32 - 16 >= sz here.
		d.nbits -= sz
		v := int32(d.acc>>d.nbits) & (1<<sz - 1)
		if v < 1<<(sz-1) {
			v -= 1<<sz - 1
		}
		blk[zigzag[k]] = v
		k++
	}
	return nil
}

// blockDC decodes a sequential block for 1/8 output: the DC coefficient;
// the AC coefficients are only stepped over.
func (d *decoder) blockDC(s *scanComp, pred *int32) (int32, error) {
	diff, err := d.dcDiff(s.dc)
	if err != nil {
		return 0, err
	}
	*pred += diff
	ac := s.ac
	for k := 1; k < 64; {
		if d.nbits < 32 {
			if err := d.fill(); err != nil {
				return 0, err
			}
		}
		var sym uint8
		if v := ac.lut[(d.acc>>(d.nbits-lutBits))&(1<<lutBits-1)]; v != 0 {
			d.nbits -= uint(v & 0xff)
			sym = uint8(v >> 8)
		} else if sym, err = d.decodeHuff(ac); err != nil {
			return 0, err
		}
		sz := uint(sym & 15)
		if sz == 0 {
			if sym != 0xf0 {
				d.eobn = d.eobn || sym != 0
				break
			}
			k += 16
			continue
		}
		// As blockBaseline (and image/jpeg): a run past the block's end
		// ends it before the value's bits are read, or the bit stream
		// would go on out of step with theirs.
		k += int(sym >> 4)
		if k > 63 {
			break
		}
		d.nbits -= sz
		k++
	}
	return *pred, nil
}

// reconstruct writes the block blk (natural order) of c at block
// position (bx, by) into c's plane, at the decoder's scale.
func (d *decoder) reconstruct(c *component, blk *[64]int32, bx, by int) {
	q := &d.quant[c.tq]
	if d.checkRange {
		for i, v := range blk {
			if v := v * q[i]; v > 2047 || v < -2048 {
				d.wild = true
			}
		}
	}
	stride := c.bw * c.bs
	dst := c.pix[by*c.bs*stride+bx*c.bs:]
	switch c.scale {
	case 1:
		idct8(blk, q, dst, stride)
	case 2:
		idct4(blk, q, dst, stride)
	case 4:
		idct2(blk, q, dst, stride)
	default:
		dst[0] = idct1(blk[0], q[0])
	}
}

// reconstructAll runs the inverse DCT over a progressive frame's kept
// coefficients, once its last scan is read.
func (d *decoder) reconstructAll() {
	var blk [64]int32
	for ci := range d.comps {
		c := &d.comps[ci]
		for by := range c.bh {
			for bx := range c.bw {
				i := by*c.bw + bx
				if c.scale == 8 {
					blk[0] = int32(c.coef[i])
				} else {
					for k, v := range c.coef[64*i : 64*i+64] {
						blk[k] = int32(v)
					}
				}
				d.reconstruct(c, &blk, bx, by)
			}
		}
	}
}

// store16 checks that a coefficient fits the int16 it is kept in: the
// DCT of 8-bit samples never comes near, so one that does not is corrupt.
func store16(v int32) (int16, error) {
	if v < -32768 || v > 32767 {
		return 0, formatError("coefficient out of range")
	}
	return int16(v), nil
}

// progressiveDCFirst decodes a block's DC in a first DC scan (G.1.2.1).
func (d *decoder) progressiveDCFirst(c *component, s *scanComp, pred *int32, bx, by, al int) error {
	diff, err := d.dcDiff(s.dc)
	if err != nil {
		return err
	}
	*pred += diff
	v, err := store16(*pred << al)
	if err != nil {
		return err
	}
	i := by*c.bw + bx
	if c.scale != 8 {
		i *= 64
	}
	c.coef[i] = v
	return nil
}

// progressiveDCRefine adds one bit to a block's DC (G.1.2.1).
func (d *decoder) progressiveDCRefine(c *component, bx, by, al int) error {
	bit, err := d.bits(1)
	if err != nil {
		return err
	}
	i := by*c.bw + bx
	if c.scale != 8 {
		i *= 64
	}
	if bit != 0 {
		c.coef[i] |= 1 << al
	}
	return nil
}

// progressiveACFirst decodes the band ss..se of a block in a first AC
// scan (G.1.2.2), with end-of-band runs across blocks.
func (d *decoder) progressiveACFirst(blk []int16, h *huffTable, ss, se, al int) error {
	if d.eobRun > 0 {
		d.eobRun--
		return nil
	}
	for k := ss; k <= se; {
		sym, err := d.huff(h)
		if err != nil {
			return err
		}
		r, sz := int(sym>>4), sym&15
		if sz == 0 {
			if r < 15 {
				run, err := d.bits(uint(r))
				if err != nil {
					return err
				}
				d.eobRun = int32(1)<<r + run - 1
				return nil
			}
			k += 16
			continue
		}
		k += r
		if k > se {
			return nil
		}
		v, err := d.receiveExtend(sz)
		if err != nil {
			return err
		}
		if blk[zigzag[k]], err = store16(v << al); err != nil {
			return err
		}
		k++
	}
	return nil
}

// progressiveACRefine refines the band ss..se of a block by one bit
// (G.1.2.3): new coefficients of magnitude 1<<al, each preceded by a run
// of zero coefficients to skip, and a correction bit for every coefficient
// already nonzero that the runs pass over.
func (d *decoder) progressiveACRefine(blk []int16, h *huffTable, ss, se, al int) error {
	delta := int32(1) << al
	k := ss
	if d.eobRun == 0 {
		for ; k <= se; k++ {
			sym, err := d.huff(h)
			if err != nil {
				return err
			}
			r, sz := int(sym>>4), sym&15
			var val int32
			switch sz {
			case 0:
				if r != 15 {
					run, err := d.bits(uint(r))
					if err != nil {
						return err
					}
					d.eobRun = int32(1)<<r + run
					goto eob
				}
			case 1:
				bit, err := d.bits(1)
				if err != nil {
					return err
				}
				val = delta
				if bit == 0 {
					val = -delta
				}
			default:
				return formatError("bad refinement code")
			}
			if k, err = d.refineNonZero(blk, k, se, r, delta); err != nil {
				return err
			}
			if k > se {
				return formatError("too many coefficients")
			}
			if val != 0 {
				blk[zigzag[k]] = int16(val)
			}
		}
		return nil
	}
eob:
	if d.eobRun > 0 {
		d.eobRun--
		if _, err := d.refineNonZero(blk, k, se, -1, delta); err != nil {
			return err
		}
	}
	return nil
}

// refineNonZero walks the band from k, reading a correction bit for each
// nonzero coefficient, and stops at the zero coefficient after skipping
// zeros others (never, when zeros is negative). It returns where it
// stopped (se+1 at the end of the band).
func (d *decoder) refineNonZero(blk []int16, k, se, zeros int, delta int32) (int, error) {
	for ; k <= se; k++ {
		z := &blk[zigzag[k]]
		if *z == 0 {
			if zeros == 0 {
				break
			}
			zeros--
			continue
		}
		bit, err := d.bits(1)
		if err != nil {
			return 0, err
		}
		if bit == 0 {
			continue
		}
		v := int32(*z)
		if v >= 0 {
			v += delta
		} else {
			v -= delta
		}
		if *z, err = store16(v); err != nil {
			return 0, err
		}
	}
	return k, nil
}
