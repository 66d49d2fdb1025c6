package jpegdec

// The inverse DCTs. idct8 is the Loeffler, Ligtenberg and Moschytz
// algorithm in scaled fixed point, as the IJG's jidctint.c (the "islow"
// IDCT, libjpeg's default) computes it; idct4 and idct2 follow the
// reduced-size IDCTs of the IJG's jidctred.c: each 8-point 1-D step is
// replaced by one producing the averages of 2 (or 4) adjacent outputs,
// which needs neither the coefficients at frequency 4 (4x4) nor those at 2,
// 4 and 6 (2x2), because the pair (quad) averages of those basis functions
// are exactly zero. The 1x1 output is the DC coefficient divided by 8, the
// mean of the block. Written here from those descriptions; the constants
// are FIX(x) = round(x * 2^13), as there.
//
// Every function dequantises as it reads (coef times the quantisation
// step, both in natural order), level-shifts by 128 and clamps to 0..255.

const (
	constBits = 13
	pass1Bits = 2

	fix0_211164243 = 1730
	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_509795579 = 4176
	fix0_541196100 = 4433
	fix0_601344887 = 4926
	fix0_720959822 = 5906
	fix0_765366865 = 6270
	fix0_850430095 = 6967
	fix0_899976223 = 7373
	fix1_061594337 = 8697
	fix1_175875602 = 9633
	fix1_272758580 = 10426
	fix1_451774981 = 11893
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_172734803 = 17799
	fix2_562915447 = 20995
	fix3_072711026 = 25172
	fix3_624509785 = 29692
)

// clampSample level-shifts v and clamps it to a sample.
func clampSample(v int32) uint8 {
	v += 128
	if uint32(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// descale is x / 2^n rounded (the IJG's DESCALE).
func descale(x int32, n uint) int32 { return (x + 1<<(n-1)) >> n }

// idct8 writes the 8x8 samples of the block c (quantised coefficients,
// natural order) dequantised by q to dst (8 rows of stride bytes).
func idct8(c, q *[64]int32, dst []byte, stride int) {
	var ws [64]int32
	// Pass 1: columns, into ws scaled up by 2^pass1Bits.
	for col := range 8 {
		if c[8+col] == 0 && c[16+col] == 0 && c[24+col] == 0 && c[32+col] == 0 &&
			c[40+col] == 0 && c[48+col] == 0 && c[56+col] == 0 {
			dc := c[col] * q[col] << pass1Bits
			for r := range 8 {
				ws[8*r+col] = dc
			}
			continue
		}
		// Even part.
		z2, z3 := c[16+col]*q[16+col], c[48+col]*q[48+col]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		z2, z3 = c[col]*q[col], c[32+col]*q[32+col]
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		// Odd part.
		tmp0, tmp1, tmp2, tmp3 = c[56+col]*q[56+col], c[40+col]*q[40+col], c[24+col]*q[24+col], c[8+col]*q[8+col]
		tmp0, tmp1, tmp2, tmp3 = oddPart(tmp0, tmp1, tmp2, tmp3)
		const n = constBits - pass1Bits
		ws[col] = descale(tmp10+tmp3, n)
		ws[56+col] = descale(tmp10-tmp3, n)
		ws[8+col] = descale(tmp11+tmp2, n)
		ws[48+col] = descale(tmp11-tmp2, n)
		ws[16+col] = descale(tmp12+tmp1, n)
		ws[40+col] = descale(tmp12-tmp1, n)
		ws[24+col] = descale(tmp13+tmp0, n)
		ws[32+col] = descale(tmp13-tmp0, n)
	}
	// Pass 2: rows, into samples.
	for r := range 8 {
		w := ws[8*r : 8*r+8 : 8*r+8]
		out := dst[r*stride : r*stride+8 : r*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			v := clampSample(descale(w[0], pass1Bits+3))
			for i := range out {
				out[i] = v
			}
			continue
		}
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := (w[0] + w[4]) << constBits
		tmp1 := (w[0] - w[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		tmp0, tmp1, tmp2, tmp3 = oddPart(w[7], w[5], w[3], w[1])
		const n = constBits + pass1Bits + 3
		out[0] = clampSample(descale(tmp10+tmp3, n))
		out[7] = clampSample(descale(tmp10-tmp3, n))
		out[1] = clampSample(descale(tmp11+tmp2, n))
		out[6] = clampSample(descale(tmp11-tmp2, n))
		out[2] = clampSample(descale(tmp12+tmp1, n))
		out[5] = clampSample(descale(tmp12-tmp1, n))
		out[3] = clampSample(descale(tmp13+tmp0, n))
		out[4] = clampSample(descale(tmp13-tmp0, n))
	}
}

// oddPart is the odd half of the 8-point LL&M IDCT: from the inputs at
// frequencies 7, 5, 3 and 1 it returns the terms added to and subtracted
// from the even part's outputs 3/4, 2/5, 1/6 and 0/7.
func oddPart(t0, t1, t2, t3 int32) (int32, int32, int32, int32) {
	z1, z2, z3, z4 := t0+t3, t1+t2, t0+t2, t1+t3
	z5 := (z3 + z4) * fix1_175875602
	t0 *= fix0_298631336
	t1 *= fix2_053119869
	t2 *= fix3_072711026
	t3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 = z3*-fix1_961570560 + z5
	z4 = z4*-fix0_390180644 + z5
	return t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
}

// idct4 writes the 4x4 samples of the block c, each the mean of a 2x2
// square of the full-size IDCT, to dst (jidctred.c's jpeg_idct_4x4).
func idct4(c, q *[64]int32, dst []byte, stride int) {
	var ws [32]int32 // 4 rows of 8 columns
	for col := range 8 {
		if col == 4 {
			continue // no output depends on frequency 4
		}
		if c[8+col] == 0 && c[16+col] == 0 && c[24+col] == 0 && c[40+col] == 0 &&
			c[48+col] == 0 && c[56+col] == 0 {
			dc := c[col] * q[col] << pass1Bits
			ws[col], ws[8+col], ws[16+col], ws[24+col] = dc, dc, dc, dc
			continue
		}
		tmp0 := c[col] * q[col] << (constBits + 1)
		tmp2 := c[16+col]*q[16+col]*fix1_847759065 - c[48+col]*q[48+col]*fix0_765366865
		tmp10, tmp12 := tmp0+tmp2, tmp0-tmp2
		tmp0, tmp2 = reducedOdd4(c[56+col]*q[56+col], c[40+col]*q[40+col], c[24+col]*q[24+col], c[8+col]*q[8+col])
		const n = constBits - pass1Bits + 1
		ws[col] = descale(tmp10+tmp2, n)
		ws[24+col] = descale(tmp10-tmp2, n)
		ws[8+col] = descale(tmp12+tmp0, n)
		ws[16+col] = descale(tmp12-tmp0, n)
	}
	for r := range 4 {
		w := ws[8*r : 8*r+8 : 8*r+8]
		out := dst[r*stride : r*stride+4 : r*stride+4]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			v := clampSample(descale(w[0], pass1Bits+3))
			out[0], out[1], out[2], out[3] = v, v, v, v
			continue
		}
		tmp0 := w[0] << (constBits + 1)
		tmp2 := w[2]*fix1_847759065 - w[6]*fix0_765366865
		tmp10, tmp12 := tmp0+tmp2, tmp0-tmp2
		tmp0, tmp2 = reducedOdd4(w[7], w[5], w[3], w[1])
		const n = constBits + pass1Bits + 3 + 1
		out[0] = clampSample(descale(tmp10+tmp2, n))
		out[3] = clampSample(descale(tmp10-tmp2, n))
		out[1] = clampSample(descale(tmp12+tmp0, n))
		out[2] = clampSample(descale(tmp12-tmp0, n))
	}
}

// reducedOdd4 is the odd part of jidctred.c's 8-to-4 step, from the
// inputs at frequencies 7, 5, 3 and 1.
func reducedOdd4(z1, z2, z3, z4 int32) (int32, int32) {
	tmp0 := -z1*fix0_211164243 + z2*fix1_451774981 - z3*fix2_172734803 + z4*fix1_061594337
	tmp2 := -z1*fix0_509795579 - z2*fix0_601344887 + z3*fix0_899976223 + z4*fix2_562915447
	return tmp0, tmp2
}

// idct2 writes the 2x2 samples of the block c, each the mean of a 4x4
// square of the full-size IDCT, to dst (jidctred.c's jpeg_idct_2x2).
func idct2(c, q *[64]int32, dst []byte, stride int) {
	var ws [16]int32 // 2 rows of 8 columns
	for _, col := range [4]int{0, 1, 3, 5} {
		ws[col], ws[8+col] = idct2Column(c, q, col)
	}
	ws[7], ws[15] = idct2Column(c, q, 7)
	for r := range 2 {
		w := ws[8*r : 8*r+8 : 8*r+8]
		out := dst[r*stride : r*stride+2 : r*stride+2]
		if w[1] == 0 && w[3] == 0 && w[5] == 0 && w[7] == 0 {
			v := clampSample(descale(w[0], pass1Bits+3))
			out[0], out[1] = v, v
			continue
		}
		tmp10 := w[0] << (constBits + 2)
		tmp0 := reducedOdd2(w[7], w[5], w[3], w[1])
		const n = constBits + pass1Bits + 3 + 2
		out[0] = clampSample(descale(tmp10+tmp0, n))
		out[1] = clampSample(descale(tmp10-tmp0, n))
	}
}

func idct2Column(c, q *[64]int32, col int) (int32, int32) {
	if c[8+col] == 0 && c[24+col] == 0 && c[40+col] == 0 && c[56+col] == 0 {
		dc := c[col] * q[col] << pass1Bits
		return dc, dc
	}
	tmp10 := c[col] * q[col] << (constBits + 2)
	tmp0 := reducedOdd2(c[56+col]*q[56+col], c[40+col]*q[40+col], c[24+col]*q[24+col], c[8+col]*q[8+col])
	const n = constBits - pass1Bits + 2
	return descale(tmp10+tmp0, n), descale(tmp10-tmp0, n)
}

// reducedOdd2 is the odd part of jidctred.c's 8-to-2 step, from the
// inputs at frequencies 7, 5, 3 and 1.
func reducedOdd2(z7, z5, z3, z1 int32) int32 {
	return -z7*fix0_720959822 + z5*fix0_850430095 - z3*fix1_272758580 + z1*fix3_624509785
}

// idct1 is the 1x1 output: the block's mean, DC / 8.
func idct1(dc, q0 int32) uint8 { return clampSample(descale(dc*q0, 3)) }
