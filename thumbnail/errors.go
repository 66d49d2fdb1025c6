package thumbnail

import "errors"

// Errors returned by thumbnail generation; test for them with errors.Is.
var (
	// ErrUnsupported: the source is not a JPEG, PNG, GIF or WebP image.
	ErrUnsupported = errors.New("thumbnail: unsupported image format")
	// ErrTooLarge: the source exceeds the pixel or byte limit.
	ErrTooLarge = errors.New("thumbnail: image too large")
)
