package thumbnail

import (
	"context"
	"image"
	"io"
)

// WithDecoder replaces the image decoders (tests inject panics with it).
func WithDecoder(f func(format string, r io.Reader) (image.Image, error)) GenerateOption {
	return generateOption(func(c *config) { c.decoder = f })
}

// SetHook makes f run at the start of every generation of s, once the
// semaphore is held.
func SetHook(s *Service, f func(ctx context.Context, key string)) { s.hook = f }

// Waiters returns how many Gets wait for the generation of key.
func Waiters(s *Service, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flights[key]; f != nil {
		return f.waiters
	}
	return 0
}

// Estimate returns the memory the generation of a thumbnail of size from
// the image in r is estimated to need, or the header's error.
func Estimate(r io.Reader, size int) (int64, error) {
	c := newConfig([]Option{WithMaxMemory(1 << 62)})
	hd, err := c.readHeader(r, size)
	return hd.need, err
}

// FailuresCached returns how many failures s remembers.
func FailuresCached(s *Service) int { return s.failures.len() }
