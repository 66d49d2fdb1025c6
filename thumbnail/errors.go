package thumbnail

import (
	"errors"

	"github.com/casa-go/casa/cas"
)

// Errors returned by thumbnail generation; test for them with errors.Is.
//
// The ones about the source image wrap the cas sentinels of the
// cashttp.Thumbnailer contract, so that a server maps them without
// importing this package: ErrUnsupported wraps cas.ErrUnsupported,
// ErrTooLarge cas.ErrTooLarge, ErrCorrupt and ErrTimeout cas.ErrCorrupt.
// Their messages are their own ("thumbnail: ...").
var (
	// ErrUnsupported: the source is not a JPEG, PNG, GIF or WebP image.
	// It wraps cas.ErrUnsupported.
	ErrUnsupported error = &contractError{"thumbnail: unsupported image format", cas.ErrUnsupported}
	// ErrTooLarge: the source exceeds the pixel or byte limit. It wraps
	// cas.ErrTooLarge.
	ErrTooLarge error = &contractError{"thumbnail: image too large", cas.ErrTooLarge}
	// ErrCorrupt: the source claims a supported format but its data does
	// not decode (truncated, damaged, or crashing the decoder). It wraps
	// cas.ErrCorrupt.
	ErrCorrupt error = &contractError{"thumbnail: corrupt image data", cas.ErrCorrupt}
	// ErrTimeout: a generation ran past its deadline (WithTimeout) and was
	// stopped. It wraps cas.ErrCorrupt: for serving, an image whose decode
	// runs past the deadline is treated like a bad source (cashttp answers
	// 500 with no-store and logs a bad source image). Unlike ErrCorrupt it
	// is never cached: a later request may succeed.
	ErrTimeout error = &contractError{"thumbnail: generation took too long", cas.ErrCorrupt}
	// ErrInvalidSize: the requested thumbnail size is not positive.
	ErrInvalidSize = errors.New("thumbnail: invalid size")
)

// contractError is a sentinel of this package that wraps a cas sentinel
// without adding that sentinel's text to its message.
type contractError struct {
	msg   string
	cause error
}

func (e *contractError) Error() string { return e.msg }
func (e *contractError) Unwrap() error { return e.cause }
