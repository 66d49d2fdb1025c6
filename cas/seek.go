package cas

import (
	"fmt"
	"io"
)

// SeekOffset returns the offset that Seek(offset, whence) moves to, as
// io.Seeker defines it, for a reader at pos over size bytes: whence is
// io.SeekStart, io.SeekCurrent or io.SeekEnd. An offset past size is no
// error (a Read there returns io.EOF). An unknown whence or a negative
// result is an error naming neither key nor package, for the caller to
// wrap. It reads nothing: Backends whose Objects read lazily (s3store)
// move their position with it and read at the next Read.
func SeekOffset(pos, size, offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = pos + offset
	case io.SeekEnd:
		abs = size + offset
	default:
		return 0, fmt.Errorf("invalid whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("negative position %d", abs)
	}
	return abs, nil
}
