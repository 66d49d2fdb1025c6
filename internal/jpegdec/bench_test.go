package jpegdec

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"testing"

	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// BenchmarkDecode: a 12 MP baseline JPEG at every scale, beside
// image/jpeg.
func BenchmarkDecode(b *testing.B) {
	src := imagetest.JPEG(4000, 3000)
	b.Run("image/jpeg", func(b *testing.B) {
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, scale := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("1/%d", scale), func(b *testing.B) {
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(src), Options{Scale: scale}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
