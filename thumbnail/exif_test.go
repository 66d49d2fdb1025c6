package thumbnail

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// tiff builds a TIFF structure with IFD0 at offset 8 holding entries of
// (tag, type, count, value).
func tiff(bo binary.AppendByteOrder, entries ...[4]uint32) []byte {
	var t []byte
	if bo == binary.AppendByteOrder(binary.LittleEndian) {
		t = append(t, "II*\x00"...)
	} else {
		t = append(t, "MM\x00*"...)
	}
	t = bo.AppendUint32(t, 8)
	t = bo.AppendUint16(t, uint16(len(entries)))
	for _, e := range entries {
		t = bo.AppendUint16(t, uint16(e[0]))
		t = bo.AppendUint16(t, uint16(e[1]))
		t = bo.AppendUint32(t, e[2])
		t = bo.AppendUint16(t, uint16(e[3]))
		t = bo.AppendUint16(t, 0)
	}
	return bo.AppendUint32(t, 0)
}

func app1(payload []byte) []byte {
	s := []byte{0xff, 0xe1}
	s = binary.BigEndian.AppendUint16(s, uint16(len(payload)+2))
	return append(s, payload...)
}

func jpegWith(segments ...[]byte) []byte {
	b := []byte{0xff, 0xd8}
	for _, s := range segments {
		b = append(b, s...)
	}
	return append(b, 0xff, 0xda, 0x00, 0x02) // start of scan
}

func TestJPEGOrientation(t *testing.T) {
	t.Parallel()
	exif := func(t []byte) []byte { return app1(append([]byte("Exif\x00\x00"), t...)) }
	var le, be binary.AppendByteOrder = binary.LittleEndian, binary.BigEndian
	orient := func(v uint32) [4]uint32 { return [4]uint32{0x0112, 3, 1, v} }
	other := [4]uint32{0x010f, 2, 4, 0}
	xmp := app1([]byte("http://ns.adobe.com/xap/1.0/\x00<x/>"))
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"empty", nil, 1},
		{"not a jpeg", []byte("GIF89a...."), 1},
		{"soi only", []byte{0xff, 0xd8}, 1},
		{"no exif", jpegWith(xmp), 1},
		{"fixture 6", imagetest.JPEGWithOrientation(8, 8, 6), 6},
		{"big endian 3", jpegWith(exif(tiff(be, orient(3)))), 3},
		{"little endian 8", jpegWith(exif(tiff(le, orient(8)))), 8},
		{"after another tag", jpegWith(exif(tiff(le, other, orient(5)))), 5},
		{"after xmp app1", jpegWith(xmp, exif(tiff(be, orient(2)))), 2},
		{"fill bytes before marker", append([]byte{0xff, 0xd8, 0xff, 0xff}, exif(tiff(be, orient(7)))...), 7},
		{"value 0", jpegWith(exif(tiff(be, orient(0)))), 1},
		{"value 9", jpegWith(exif(tiff(be, orient(9)))), 1},
		{"value 65535", jpegWith(exif(tiff(be, orient(65535)))), 1},
		{"type LONG", jpegWith(exif(tiff(be, [4]uint32{0x0112, 4, 1, 6}))), 1},
		{"count 2", jpegWith(exif(tiff(be, [4]uint32{0x0112, 3, 2, 6}))), 1},
		{"bad byte order", jpegWith(exif([]byte("XX\x00*\x00\x00\x00\x08\x00\x00"))), 1},
		{"ifd offset past end", jpegWith(exif([]byte("MM\x00*\xff\xff\xff\xf0"))), 1},
		{"ifd offset below header", jpegWith(exif([]byte("MM\x00*\x00\x00\x00\x02\x00\x00"))), 1},
		{"entry count past end", jpegWith(exif([]byte("MM\x00*\x00\x00\x00\x08\xff\xff\x01\x12"))), 1},
		{"short tiff", jpegWith(exif([]byte("MM\x00*"))), 1},
		{"segment length past end", []byte{0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff, 'E', 'x'}, 1},
		{"segment length 0", []byte{0xff, 0xd8, 0xff, 0xe1, 0x00, 0x00, 0xff, 0xe1}, 1},
		{"garbage between segments", []byte{0xff, 0xd8, 0x00, 0x00, 0x00, 0x00}, 1},
		{"exif after scan ignored", append(jpegWith(), exif(tiff(be, orient(6)))...), 1},
		{"exif in app2 ignored", jpegWith(append([]byte{0xff, 0xe2}, exif(tiff(be, orient(6)))[2:]...)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, jpegOrientation(tt.in))
		})
	}
}

func FuzzJPEGOrientation(f *testing.F) {
	f.Add([]byte{})
	f.Add(imagetest.JPEGWithOrientation(8, 8, 6))
	f.Add(jpegWith(app1(append([]byte("Exif\x00\x00"), tiff(binary.LittleEndian, [4]uint32{0x0112, 3, 1, 8})...))))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, '*', 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		o := jpegOrientation(b)
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d out of 1..8", o)
		}
	})
}
