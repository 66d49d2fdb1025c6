package thumbnail

import "errors"

// Errors returned by thumbnail generation; test for them with errors.Is.
var (
	// ErrUnsupported: the source is not a JPEG, PNG, GIF or WebP image.
	ErrUnsupported = errors.New("thumbnail: unsupported image format")
	// ErrTooLarge: the source exceeds the pixel or byte limit.
	ErrTooLarge = errors.New("thumbnail: image too large")
	// ErrCorrupt: the source claims a supported format but its data does
	// not decode (truncated, damaged, or crashing the decoder).
	ErrCorrupt = errors.New("thumbnail: corrupt image data")
	// ErrTimeout: a generation ran past its deadline (WithTimeout) and was
	// stopped. It is never cached: a later request may succeed.
	ErrTimeout = errors.New("thumbnail: generation took too long")
	// ErrInvalidSize: the requested thumbnail size is not positive.
	ErrInvalidSize = errors.New("thumbnail: invalid size")
)
