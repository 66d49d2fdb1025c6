package jpegdec

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// patch returns a copy of b with the bytes at the first occurrence of
// marker (plus off) replaced by with.
func patch(t testing.TB, b []byte, marker byte, off int, with ...byte) []byte {
	t.Helper()
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte{0xff, marker})
	require.Positive(t, i, "marker %#x", marker)
	copy(c[i+off:], with)
	return c
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

// TestDecodeHostileInputs: malformed and hostile files fail with an error
// (ErrUnsupported or ErrTooLarge where the table says so) at every scale,
// without panicking.
func TestDecodeHostileInputs(t *testing.T) {
	t.Parallel()
	base := imagetest.JPEG(64, 48)
	prog := readFixture(t, "67_2x2_prog.jpg")
	rst := readFixture(t, "67_2x2_base_rst.jpg")
	sof := bytes.Index(base, []byte{0xff, 0xc0})
	require.Positive(t, sof)
	dht := bytes.Index(base, []byte{0xff, 0xc4})
	require.Positive(t, dht)
	sos := bytes.Index(base, []byte{0xff, 0xda})
	require.Positive(t, sos)

	overfull := bytes.Clone(base) // three 1-bit codes in the first table
	overfull[dht+5] += 3
	overfull[dht+7] -= 3
	noRST := bytes.Clone(rst) // the first RST marker turned into data
	i := bytes.Index(noRST, []byte{0xff, 0xd0})
	require.Positive(t, i)
	noRST[i+1] = 0x00
	dims := func(b []byte, w, h uint16) []byte {
		c := bytes.Clone(b)
		i := bytes.Index(c, []byte{0xff, 0xc0})
		if i < 0 {
			i = bytes.Index(c, []byte{0xff, 0xc2})
		}
		binary.BigEndian.PutUint16(c[i+5:], h)
		binary.BigEndian.PutUint16(c[i+7:], w)
		return c
	}

	tests := []struct {
		name string
		data []byte
		want error // nil: any error
	}{
		{"empty", nil, nil},
		{"soi only", []byte{0xff, 0xd8}, nil},
		{"not a jpeg", []byte("GIF89a........"), nil},
		{"truncated baseline", base[:len(base)/2], nil},
		{"truncated progressive", prog[:len(prog)/2], nil},
		{"truncated in the header", base[:sos+5], nil},
		{"no EOI", base[:len(base)-2], nil},
		{"corrupt data", imagetest.Corrupt(base), nil},
		{"overfull Huffman table", overfull, nil},
		{"Huffman table with no codes", patch(t, base, 0xc4, 5, make([]byte, 16)...), nil},
		{"DHT longer than its segment", patch(t, base, 0xc4, 2, 0, 19), nil},
		{"bad table class", patch(t, base, 0xc4, 4, 0x27), nil},
		{"bad DQT destination", patch(t, base, 0xdb, 4, 0x07), nil},
		{"SOS before SOF", []byte{0xff, 0xd8, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0, 0xff, 0xd9}, nil},
		{"unknown component in scan", patch(t, base, 0xda, 5, 9), nil},
		{"repeated component in scan", patch(t, base, 0xda, 7, base[sos+5]), nil},
		{"repeated component in frame", patch(t, base, 0xc0, 13, base[sof+10]), nil},
		{"bad sampling factors", patch(t, base, 0xc0, 11, 0x50), nil},
		{"missing RST marker", noRST, nil},
		{"huge dimensions", dims(base, 65535, 65535), ErrTooLarge},
		{"huge progressive", dims(prog, 60000, 60000), ErrTooLarge},
		{"zero height (DNL)", dims(base, 64, 0), ErrUnsupported},
		{"12-bit", patch(t, base, 0xc0, 4, 12), ErrUnsupported},
		{"extended (SOF1)", patch(t, base, 0xc0, 1, 0xc1), ErrUnsupported},
		{"lossless (SOF3)", patch(t, base, 0xc0, 1, 0xc3), ErrUnsupported},
		{"arithmetic (SOF9)", patch(t, base, 0xc0, 1, 0xc9), ErrUnsupported},
		{"4:1:1", patch(t, base, 0xc0, 11, 0x41), ErrUnsupported},
		{"CMYK", imagetest.ProgressiveJPEG(64, 48, imagetest.LayoutCMYK, 4, false), ErrUnsupported},
		{"Adobe RGB", imagetest.InsertAPP1(base, nil)[:0:0], nil}, // replaced below
	}
	// An Adobe APP14 with transform 0 marks a 3-component file RGB.
	adobe := append([]byte{0xff, 0xd8, 0xff, 0xee, 0, 14}, "Adobe\x00\x64\x00\x00\x00\x00\x00"...)
	tests[len(tests)-1].data = append(adobe, base[2:]...)
	tests[len(tests)-1].want = ErrUnsupported

	for _, tt := range tests {
		for _, scale := range []int{1, 2, 4, 8} {
			m, err := Decode(bytes.NewReader(tt.data), Options{Scale: scale, MaxPixels: 50_000_000})
			require.Error(t, err, "%s at 1/%d", tt.name, scale)
			require.Nil(t, m)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want, "%s at 1/%d", tt.name, scale)
			}
		}
	}
}

// TestDecodeRefusesHugeFramesBeforeAllocating: the pixel limit is checked
// on the frame header, before the planes are allocated.
func TestDecodeRefusesHugeFramesBeforeAllocating(t *testing.T) {
	b := imagetest.JPEG(64, 48)
	i := bytes.Index(b, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(b[i+5:], 60000)
	binary.BigEndian.PutUint16(b[i+7:], 60000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(bytes.NewReader(b), Options{Scale: 8, MaxPixels: 50_000_000})
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTooLarge)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10))
}

// TestDecodeScaleOption: scales other than 1, 2, 4 and 8 are refused; 0
// is 1.
func TestDecodeScaleOption(t *testing.T) {
	t.Parallel()
	b := imagetest.JPEG(64, 48)
	for _, s := range []int{-1, 3, 16} {
		_, err := Decode(bytes.NewReader(b), Options{Scale: s})
		require.Error(t, err, "scale %d", s)
	}
	m, err := Decode(bytes.NewReader(b), Options{})
	require.NoError(t, err)
	require.Equal(t, 64, m.Bounds().Dx())
}

// TestFrameBytesCoversAllocation: Frame.Bytes, which thumbnail's memory
// estimate uses, covers what a decode allocates, for baseline and
// progressive frames at every scale. Not parallel: it measures the
// process's allocations.
func TestFrameBytesCoversAllocation(t *testing.T) {
	for _, name := range []string{"301_2x2_base.jpg", "301_2x2_prog.jpg", "301_1x1_prog.jpg", "301_gray_prog.jpg", "301_2x1_base.jpg"} {
		data := readFixture(t, name)
		for _, scale := range []int{1, 2, 4, 8} {
			d := newDecoder(bytes.NewReader(data), Options{Scale: scale})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := d.decode()
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			n := int64(after.TotalAlloc - before.TotalAlloc)
			est := d.frameInfo().Bytes(scale)
			require.GreaterOrEqual(t, est, n, "%s at 1/%d", name, scale)
			require.Less(t, est, 2*n+64<<10, "%s at 1/%d: estimate far above", name, scale)
		}
	}
}

// FuzzDecode: arbitrary bytes at every scale never panic; whatever both
// decode, this package and image/jpeg agree on within the tolerances of
// compareWithStd (1/1: 2 levels on every sample; reduced: 2 levels
// against the box mean of image/jpeg's samples where none is clamped).
func FuzzDecode(f *testing.F) {
	for _, data := range fixtures(f) {
		if len(data) < 8<<10 { // small seeds: the fuzzer minimises what it finds
			f.Add(data, uint8(0))
			f.Add(data, uint8(3))
		}
	}
	f.Add(imagetest.ProgressiveJPEG(64, 48, imagetest.LayoutYCbCr420, 6, false), uint8(1))
	f.Add(imagetest.ProgressiveJPEG(64, 48, imagetest.LayoutGray, 3, true), uint8(2))
	f.Add(imagetest.JPEGWithOrientation(40, 30, 6), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, s uint8) {
		scale := 1 << (s % 4)
		if cfg, err := jpeg.DecodeConfig(bytes.NewReader(data)); err == nil && cfg.Width*cfg.Height > 1<<20 {
			return // image/jpeg has no pixel limit: keep the fuzzer's memory bounded
		}
		if bytes.Count(data, []byte{0xff, 0xda}) > 100 {
			return // thousands of scans are a CPU bomb for both (thumbnail refuses them, MaxJPEGScans)
		}
		m, err := Decode(bytes.NewReader(data), Options{Scale: scale, MaxPixels: 1 << 20})
		if err == nil {
			b := m.Bounds()
			require.False(t, b.Empty())
			require.LessOrEqual(t, b.Dx()*b.Dy(), 1<<20)
		}
		res, err := compareWithStd(data, scale)
		require.NoError(t, err)
		_ = res
	})
}

// TestDecodeRGBDecidedAtFirstScan: components named R, G, B make a
// 3-component file RGB (unsupported here, image/jpeg's rule) unless a JFIF
// APP0 says YCbCr, even when that segment comes after the frame header.
func TestDecodeRGBDecidedAtFirstScan(t *testing.T) {
	t.Parallel()
	b := imagetest.JPEG(64, 48)
	sof := bytes.Index(b, []byte{0xff, 0xc0})
	sos := bytes.Index(b, []byte{0xff, 0xda})
	rgb := bytes.Clone(b)
	for i, id := range []byte("RGB") {
		require.Equal(t, byte(i+1), rgb[sof+10+3*i])
		rgb[sof+10+3*i] = id
		require.Equal(t, byte(i+1), rgb[sos+5+2*i])
		rgb[sos+5+2*i] = id
	}
	_, err := Decode(bytes.NewReader(rgb), Options{Scale: 2})
	require.ErrorIs(t, err, ErrUnsupported)

	app0 := append([]byte{0xff, 0xe0, 0, 16}, "JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"...)
	late := append(append(bytes.Clone(rgb[:sos]), app0...), rgb[sos:]...)
	m, err := Decode(bytes.NewReader(late), Options{Scale: 2})
	require.NoError(t, err)
	require.IsType(t, &image.YCbCr{}, m)
}
