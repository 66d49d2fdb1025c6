package thumbnail

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"

	"github.com/disintegration/imaging"
)

// fit returns the dimensions of a w x h image scaled to fit inside
// size x size with its aspect ratio kept, never larger than w x h.
func fit(w, h, size int) (int, int) {
	if w <= size && h <= size {
		return w, h
	}
	if w >= h {
		return size, max(1, int((int64(h)*int64(size)+int64(w)/2)/int64(w)))
	}
	return max(1, int((int64(w)*int64(size)+int64(h)/2)/int64(h))), size
}

// shrinkFactor is the integer factor of the cheap box pre-shrink. When the
// target is the source divided exactly by an integer, the box average by
// that factor is the area-average downscale itself and no final filter is
// needed (4000x3000 to 1000x750). Otherwise it is the largest factor that
// keeps the intermediate image at least twice the target in both
// directions, so that the final filter still sees enough samples.
func shrinkFactor(w, h, tw, th int) int {
	if f := w / tw; f >= 2 && w == f*tw && h == f*th {
		return f
	}
	return min(w/(2*tw), h/(2*th))
}

// render scales m to tw x th, orients, flattens and encodes it. The
// target comes from the source's dimensions (fit), not m's: an image
// decoded at a reduced scale is a little larger than the source divided
// by the scale, and the thumbnail must not change size with it.
func (c *config) render(m image.Image, orient, tw, th int) ([]byte, error) {
	if c, ok := m.(*image.CMYK); ok {
		m = cmykToRGBA(c)
	}
	b := m.Bounds()
	if f := shrinkFactor(b.Dx(), b.Dy(), tw, th); f >= 2 {
		if y, ok := m.(*image.YCbCr); ok && b.Min == (image.Point{}) {
			m = boxYCbCr(y, f)
		} else {
			m = imaging.Resize(m, (b.Dx()+f-1)/f, (b.Dy()+f-1)/f, imaging.Box)
		}
	}
	var n *image.NRGBA
	if mb := m.Bounds(); mb.Dx() != tw || mb.Dy() != th {
		n = imaging.Resize(m, tw, th, imaging.CatmullRom)
	} else if nm, ok := m.(*image.NRGBA); ok {
		n = nm
	} else {
		n = imaging.Clone(m)
	}
	n = orientate(n, orient)
	rgba := flatten(n)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, rgba, &jpeg.Options{Quality: c.quality}); err != nil {
		return nil, fmt.Errorf("thumbnail: encode: %w", err)
	}
	return out.Bytes(), nil
}

// orientate applies an EXIF orientation (1..8) to m.
func orientate(m *image.NRGBA, orient int) *image.NRGBA {
	switch orient {
	case 2:
		return imaging.FlipH(m)
	case 3:
		return imaging.Rotate180(m)
	case 4:
		return imaging.FlipV(m)
	case 5:
		return imaging.Transpose(m)
	case 6:
		return imaging.Rotate270(m) // 90 degrees clockwise
	case 7:
		return imaging.Transverse(m)
	case 8:
		return imaging.Rotate90(m) // 90 degrees counter-clockwise
	}
	return m
}

// flatten composes m onto opaque white, in place, and returns the same
// pixels as an *image.RGBA (which image/jpeg encodes on its fast path).
func flatten(m *image.NRGBA) *image.RGBA {
	for i := 0; i+3 < len(m.Pix); i += 4 {
		a := uint32(m.Pix[i+3])
		if a == 255 {
			continue
		}
		for j := range 3 {
			m.Pix[i+j] = uint8((uint32(m.Pix[i+j])*a + 255*(255-a) + 127) / 255)
		}
		m.Pix[i+3] = 255
	}
	return &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
}

// chromaShift returns log2 of the horizontal and vertical chroma
// subsampling of r.
func chromaShift(r image.YCbCrSubsampleRatio) (uint, uint) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 1, 0
	case image.YCbCrSubsampleRatio420:
		return 1, 1
	case image.YCbCrSubsampleRatio440:
		return 0, 1
	case image.YCbCrSubsampleRatio411:
		return 2, 0
	case image.YCbCrSubsampleRatio410:
		return 2, 1
	}
	return 0, 0
}

// boxYCbCr shrinks m (whose Rect starts at the origin) by the integer
// factor f, averaging each f x f block of luma and the chroma samples
// under it, and converts to RGB. It reads every sample once, in row
// order, and allocates only the output and three row accumulators: far
// cheaper than a convolution over the full image and, kept at least twice
// the target size, it loses nothing the final filter would keep.
func boxYCbCr(m *image.YCbCr, f int) *image.NRGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	ow, oh := (w+f-1)/f, (h+f-1)/f
	sx, sy := chromaShift(m.SubsampleRatio)
	cw := (w-1)>>sx + 1
	out := image.NewNRGBA(image.Rect(0, 0, ow, oh))
	yAcc := make([]uint32, w)
	cbAcc := make([]uint32, cw)
	crAcc := make([]uint32, cw)
	for oy := range oh {
		y0, y1 := oy*f, min(oy*f+f, h)
		// Sum the block's rows column by column: a tight loop over
		// contiguous bytes.
		copyRow(yAcc, m.Y[y0*m.YStride:y0*m.YStride+w])
		for y := y0 + 1; y < y1; y++ {
			addRow(yAcc, m.Y[y*m.YStride:y*m.YStride+w])
		}
		cy0, cy1 := y0>>sy, (y1-1)>>sy+1
		copyRow(cbAcc, m.Cb[cy0*m.CStride:cy0*m.CStride+cw])
		copyRow(crAcc, m.Cr[cy0*m.CStride:cy0*m.CStride+cw])
		for cy := cy0 + 1; cy < cy1; cy++ {
			addRow(cbAcc, m.Cb[cy*m.CStride:cy*m.CStride+cw])
			addRow(crAcc, m.Cr[cy*m.CStride:cy*m.CStride+cw])
		}
		rows := uint64(y1 - y0)
		crows := uint64(cy1 - cy0)
		px := out.Pix[oy*out.Stride : oy*out.Stride+4*ow]
		for ox := range ow {
			x0, x1 := ox*f, min(ox*f+f, w)
			// Block sums in 64 bits: 255 * f * f overflows 32 bits once
			// f > 4104 (a 50 MP image at a size of a few pixels).
			var ys uint64
			for _, v := range yAcc[x0:x1] {
				ys += uint64(v)
			}
			cx0, cx1 := x0>>sx, (x1-1)>>sx+1
			var cbs, crs uint64
			for i := cx0; i < cx1; i++ {
				cbs += uint64(cbAcc[i])
				crs += uint64(crAcc[i])
			}
			n := uint64(x1-x0) * rows
			cn := uint64(cx1-cx0) * crows
			// color.YCbCrToRGB, written out: the call is not inlined.
			yy := int32(div(ys, n)) * 0x10101
			cb := int32(div(cbs, cn)) - 128
			cr := int32(div(crs, cn)) - 128
			p := px[4*ox : 4*ox+4 : 4*ox+4]
			p[0] = clamp16(yy + 91881*cr)
			p[1] = clamp16(yy - 22554*cb - 46802*cr)
			p[2] = clamp16(yy + 116130*cb)
			p[3] = 255
		}
	}
	return out
}

// div returns s/n rounded to nearest, for sample sums (s <= 255*n).
func div(s, n uint64) uint8 {
	return uint8((s + n/2) / n)
}

// clamp16 returns v >> 16 clamped to 0..255, as color.YCbCrToRGB does.
func clamp16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}

func copyRow(acc []uint32, row []byte) {
	acc = acc[:len(row)]
	for i, v := range row {
		acc[i] = uint32(v)
	}
}

func addRow(acc []uint32, row []byte) {
	acc = acc[:len(row)]
	for i, v := range row {
		acc[i] += uint32(v)
	}
}

// cmykToRGBA converts m to RGB in place and returns the same pixels as an
// *image.RGBA: imaging has no fast path for CMYK and would read it one
// color.Color (and one allocation) at a time.
func cmykToRGBA(m *image.CMYK) *image.RGBA {
	for i := 0; i+3 < len(m.Pix); i += 4 {
		p := m.Pix[i : i+4 : i+4]
		p[0], p[1], p[2] = color.CMYKToRGB(p[0], p[1], p[2], p[3])
		p[3] = 255
	}
	return &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
}
