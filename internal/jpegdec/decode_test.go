package jpegdec

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// Tolerances of the differential comparison with image/jpeg.
//
// At 1/1 both decoders compute the 8x8 inverse DCT in fixed point, each
// within 1 level of the exact transform (both meet the IEEE 1180 accuracy
// the JPEG standard asks for: image/jpeg's is the MPEG reference
// decoder's, ours the IJG's islow), so samples differ by at most 2.
//
// At 1/2, 1/4 and 1/8 each output sample is, exactly in real arithmetic,
// the mean of the 2x2, 4x4 or 8x8 full-size samples under it (the reduced
// IDCTs drop only frequencies whose basis functions average to zero over
// those squares; see idct.go), so it is compared with the rounded mean of
// image/jpeg's samples there: image/jpeg's per-sample error (at most 1,
// mostly averaging out), the rounding of that mean (1/2) and ours (the
// reduced IDCT's fixed point, at most 1) stay within 2 levels. A square
// where image/jpeg clamped a sample (0 or 255) is not compared: the mean
// of clamped samples is not the clamp of the mean, and may differ by any
// amount (a hard black-white edge's ringing).
const (
	tolFull    = 2
	tolReduced = 2
)

// wildSkip is set when a comparison was skipped: coefficients out of the
// range of an 8-bit image's DCT, where the two decoders' fixed-point
// arithmetic (int32 overflow included) legitimately differs.
type diffResult struct {
	skipped  string
	compared int // samples compared
	excluded int // squares excluded for clamping
	maxDiff  int
}

// compareWithStd decodes data with image/jpeg and with this package at
// scale and checks every plane as the tolerances above say. Inputs that
// either decoder rejects are skipped (not failures: rejecting more or
// less than image/jpeg is allowed; a panic is not).
func compareWithStd(data []byte, scale int) (diffResult, error) {
	var res diffResult
	std, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		res.skipped = "image/jpeg: " + err.Error()
		return res, nil
	}
	d := newDecoder(bytes.NewReader(data), Options{Scale: scale, MaxPixels: 1 << 22})
	d.checkRange = true
	m, err := d.decode()
	if err != nil {
		res.skipped = "jpegdec: " + err.Error()
		return res, nil
	}
	if d.wild {
		res.skipped = "coefficients out of range"
		return res, nil
	}
	if d.eobn {
		res.skipped = "an undefined end-of-band-run symbol in a sequential scan"
		return res, nil
	}
	sw, sh := (d.width+scale-1)/scale, (d.height+scale-1)/scale
	if m.Bounds() != image.Rect(0, 0, sw, sh) {
		return res, fmt.Errorf("bounds %v, want %dx%d", m.Bounds(), sw, sh)
	}
	var planes [][]byte
	var strides []int
	switch s := std.(type) {
	case *image.Gray:
		if _, ok := m.(*image.Gray); !ok {
			return res, fmt.Errorf("got %T for a gray image", m)
		}
		planes, strides = [][]byte{s.Pix}, []int{s.Stride}
	case *image.YCbCr:
		y, ok := m.(*image.YCbCr)
		if !ok {
			return res, fmt.Errorf("got %T for a YCbCr image", m)
		}
		if y.SubsampleRatio != s.SubsampleRatio && !(s.SubsampleRatio == image.YCbCrSubsampleRatio420 && scale > 1) {
			return res, fmt.Errorf("subsampling %v, image/jpeg %v", y.SubsampleRatio, s.SubsampleRatio)
		}
		planes, strides = [][]byte{s.Y, s.Cb, s.Cr}, []int{s.YStride, s.CStride, s.CStride}
	default:
		res.skipped = fmt.Sprintf("image/jpeg returned %T", std)
		return res, nil
	}
	for ci := range d.comps {
		c := &d.comps[ci]
		ours, stride := c.pix, c.bw*c.bs
		ref, rstride := planes[ci], strides[ci]
		scale := c.scale
		for y := range c.ch * c.bs {
			for x := range c.cw * c.bs {
				got := int(ours[y*stride+x])
				sum, clamped := 0, false
				for j := range scale {
					for i := range scale {
						v := ref[(y*scale+j)*rstride+x*scale+i]
						sum += int(v)
						clamped = clamped || v == 0 || v == 255
					}
				}
				n := scale * scale
				want := (sum + n/2) / n
				tol := tolReduced
				if scale == 1 {
					tol, clamped = tolFull, false
				}
				if clamped {
					res.excluded++
					continue
				}
				res.compared++
				res.maxDiff = max(res.maxDiff, got-want, want-got)
				if diff := got - want; diff > tol || diff < -tol {
					return res, fmt.Errorf("component %d at 1/%d, sample (%d,%d): got %d, image/jpeg %d", ci, scale, x, y, got, want)
				}
			}
		}
	}
	return res, nil
}

// fixtures are the test files: cjpeg-made (libjpeg-turbo 2.1.5) baseline,
// progressive (its default script, with successive approximation) and
// restart-marker files of every supported sampling, and image/jpeg-made
// ones.
func fixtures(t testing.TB) map[string][]byte {
	files, err := filepath.Glob("testdata/*.jpg")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = b
	}
	out["imagetest 4:2:0 640x480"] = imagetest.JPEG(640, 480)
	out["imagetest 4:2:0 33x17"] = imagetest.JPEG(33, 17)
	out["imagetest quadrants"] = imagetest.JPEGWithOrientation(90, 70, 6)
	out["imagetest progressive 4:2:0 640x480"] = imagetest.ProgressivePhoto(640, 480)
	out["imagetest progressive 4:2:0 35x19"] = imagetest.ProgressivePhoto(35, 19)
	var g bytes.Buffer
	gray := image.NewGray(image.Rect(0, 0, 77, 51))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(60 + i%77 + i/77 + i*i%9)
	}
	require.NoError(t, jpeg.Encode(&g, gray, &jpeg.Options{Quality: 75}))
	out["image/jpeg gray"] = g.Bytes()
	return out
}

// TestDecodeMatchesImageJPEG: every fixture at every scale matches
// image/jpeg within the tolerances, and is compared (not skipped).
func TestDecodeMatchesImageJPEG(t *testing.T) {
	t.Parallel()
	worst := map[int]int{}
	defer func() { t.Logf("largest differences by scale: %v", worst) }()
	for name, data := range fixtures(t) {
		for _, scale := range []int{1, 2, 4, 8} {
			res, err := compareWithStd(data, scale)
			require.NoError(t, err, "%s at 1/%d", name, scale)
			if strings.HasSuffix(name, "_prog_rst.jpg") && strings.HasPrefix(res.skipped, "image/jpeg:") {
				// image/jpeg fails some progressive files with restart
				// markers (end-of-band runs across them);
				// TestRestartMarkersChangeNothing covers them.
				continue
			}
			require.Empty(t, res.skipped, "%s at 1/%d", name, scale)
			require.Positive(t, res.compared, "%s at 1/%d", name, scale)
			worst[scale] = max(worst[scale], res.maxDiff)
			if !strings.Contains(name, "quadrants") { // flat 255 white: clamped
				require.Less(t, res.excluded, res.compared/10+1, "%s at 1/%d: most squares excluded", name, scale)
			}
		}
	}
}

// TestRestartMarkersChangeNothing: cjpeg's files with restart markers
// hold the same coefficients as those without (same quality, same
// sampling), so they decode to the same planes at every scale, byte for
// byte.
func TestRestartMarkersChangeNothing(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*_rst.jpg")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		plain := strings.TrimSuffix(f, "_rst.jpg") + ".jpg"
		rst, err := os.ReadFile(f)
		require.NoError(t, err)
		ref, err := os.ReadFile(plain)
		require.NoError(t, err)
		require.True(t, bytes.Contains(rst, []byte{0xff, 0xd0}), f)
		for _, scale := range []int{1, 2, 4, 8} {
			a, err := Decode(bytes.NewReader(rst), Options{Scale: scale})
			require.NoError(t, err, "%s at 1/%d", f, scale)
			b, err := Decode(bytes.NewReader(ref), Options{Scale: scale})
			require.NoError(t, err, "%s at 1/%d", plain, scale)
			require.Equal(t, planesOf(b), planesOf(a), "%s at 1/%d", f, scale)
		}
	}
}

// planesOf returns the visible samples of m's planes.
func planesOf(m image.Image) [][]byte {
	switch m := m.(type) {
	case *image.Gray:
		return [][]byte{m.Pix}
	case *image.YCbCr:
		return [][]byte{m.Y, m.Cb, m.Cr}
	}
	return nil
}
