package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math/bits"
)

// JPEGLayout is the component layout of a hand-built progressive JPEG.
type JPEGLayout int

// Layouts of ProgressiveJPEG.
const (
	// LayoutGray is one component.
	LayoutGray JPEGLayout = iota
	// LayoutYCbCr420 is Y at 2x2 and Cb, Cr at 1x1 sampling: what cameras write.
	LayoutYCbCr420
	// LayoutYCbCr444 is three components at full resolution.
	LayoutYCbCr444
	// LayoutCMYK is four components at full resolution, marked CMYK by an
	// Adobe APP14 segment: the costliest layout image/jpeg decodes.
	LayoutCMYK
)

// ProgressiveJPEG returns a progressive (SOF2) JPEG claiming w x h pixels
// (1..65535 each) in the given layout, built by hand as an attacker would:
// a quantisation table, one AC Huffman table whose only symbols are
// end-of-band runs, and scans AC scans (at least one a component; the
// components take turns) whose data is nothing but end-of-band runs of
// up to 32767 blocks. Every coefficient is zero, so each scan costs a few
// dozen bytes whatever the size, yet image/jpeg allocates the image and
// 256 bytes of coefficients per 8x8 block of every component in a scan,
// and walks every block of the component on every scan. With truncate
// the file stops in the middle of its last scan, with no EOI: the decoder
// allocates everything and then fails.
//
// A 7000x7000 CMYK file with 4 scans is under 500 bytes; a 7000x7000 gray
// file with 2000 scans is about 130 KB.
func ProgressiveJPEG(w, h int, layout JPEGLayout, scans int, truncate bool) []byte {
	type comp struct{ id, hv byte }
	var comps []comp
	switch layout {
	case LayoutGray:
		comps = []comp{{1, 0x11}}
	case LayoutYCbCr420:
		comps = []comp{{1, 0x22}, {2, 0x11}, {3, 0x11}}
	case LayoutYCbCr444:
		comps = []comp{{1, 0x11}, {2, 0x11}, {3, 0x11}}
	default:
		comps = []comp{{'C', 0x11}, {'M', 0x11}, {'Y', 0x11}, {'K', 0x11}}
	}
	scans = max(scans, len(comps))

	var b bytes.Buffer
	b.Write([]byte{0xff, 0xd8})
	if layout == LayoutCMYK {
		// Adobe APP14: version 100, no flags, transform 0 (CMYK).
		writeJPEGSegment(&b, 0xee, []byte("Adobe\x00\x64\x00\x00\x00\x00\x00"))
	}
	dqt := make([]byte, 65) // table 0, 8-bit, every step 1
	for i := 1; i < len(dqt); i++ {
		dqt[i] = 1
	}
	writeJPEGSegment(&b, 0xdb, dqt)
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(len(comps))}
	for _, c := range comps {
		sof = append(sof, c.id, c.hv, 0)
	}
	writeJPEGSegment(&b, 0xc2, sof)
	// AC table 0: the 15 end-of-band-run symbols r<<4 (r = 0..14), each
	// with a 4-bit code.
	dht := []byte{0x10, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for r := range 15 {
		dht = append(dht, byte(r<<4))
	}
	writeJPEGSegment(&b, 0xc4, dht)

	// Blocks a non-interleaved scan of each component codes, as image/jpeg
	// counts them: the component's blocks whose top-left corner lies
	// inside the image.
	h0, v0 := int(comps[0].hv>>4), int(comps[0].hv&15)
	if len(comps) == 1 {
		h0, v0 = 1, 1
	}
	mxx, myy := (w+8*h0-1)/(8*h0), (h+8*v0-1)/(8*v0)
	for s := range scans {
		c := comps[s%len(comps)]
		hi, vi := int(c.hv>>4), int(c.hv&15)
		if len(comps) == 1 {
			hi, vi = 1, 1
		}
		nx := min(mxx*hi, (w+7)/8)
		ny := min(myy*vi, (h+7)/8)
		writeJPEGSegment(&b, 0xda, []byte{1, c.id, 0x00, 1, 63, 0x00})
		data := eobRuns(nx * ny)
		if truncate && s == scans-1 {
			b.Write(data[:len(data)/2])
			return b.Bytes()
		}
		b.Write(data)
	}
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// eobRuns returns the entropy-coded data of an AC scan that codes n
// blocks as end-of-band runs (the table of ProgressiveJPEG: symbol r<<4
// is code r, 4 bits), byte-stuffed and padded with 1 bits.
func eobRuns(n int) []byte {
	var acc uint64
	var nacc uint
	var out []byte
	put := func(v uint64, nb uint) {
		acc = acc<<nb | v&(1<<nb-1)
		nacc += nb
		for nacc >= 8 {
			c := byte(acc >> (nacc - 8))
			out = append(out, c)
			if c == 0xff {
				out = append(out, 0)
			}
			nacc -= 8
		}
	}
	for n > 0 {
		run := min(n, 32767)
		r := uint(bits.Len(uint(run)) - 1)
		put(uint64(r), 4)
		put(uint64(run-1<<r), r)
		n -= run
	}
	if nacc > 0 {
		put(1<<(8-nacc)-1, 8-nacc)
	}
	return out
}

func writeJPEGSegment(b *bytes.Buffer, marker byte, payload []byte) {
	b.Write([]byte{0xff, marker})
	_ = binary.Write(b, binary.BigEndian, uint16(len(payload)+2))
	b.Write(payload)
}

// PNGInterlaced16 returns a PNG whose IHDR claims w x h pixels of 16-bit
// RGBA, Adam7-interlaced (the costliest PNG to decode: 8 bytes a pixel,
// plus a buffer per pass), followed by an IDAT holding a short zlib
// stream of zero rows and IEND. It is a few hundred bytes: the decoder
// allocates the whole image before it finds the data short.
func PNGInterlaced16(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 16, 6, 0, 0, 1) // depth 16, RGBA, deflate, filter 0, Adam7
	writePNGChunk(&b, "IHDR", ihdr)
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	_, _ = zw.Write(make([]byte, 64<<10))
	_ = zw.Close()
	writePNGChunk(&b, "IDAT", z.Bytes())
	writePNGChunk(&b, "IEND", nil)
	return b.Bytes()
}
