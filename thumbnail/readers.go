package thumbnail

import (
	"context"
	"errors"
	"io"
)

// MaxJPEGScans is the most scans (SOS markers) a JPEG may have. Every scan
// of a progressive JPEG makes image/jpeg walk every block of a component
// again, so a small file with thousands of scans costs minutes of CPU.
// Real encoders write far fewer: libjpeg's default progressive script
// has 10 scans for YCbCr (6 for grey, 18 for CMYK), and mozjpeg's and
// jpegtran's scan optimisation chooses among at most 64 candidate scans.
// libjpeg-turbo has the same guard (TJPARAM_SCANLIMIT, djpeg -maxscans;
// its fuzzers use 500, on images of at most 1 MP). 100 keeps every real
// file and bounds the work to 100 passes over the blocks, which the
// memory budget bounds in turn.
const MaxJPEGScans = 100

var errTooManyScans = errors.New("too many scans")

// scanCounter counts the scans of the JPEG stream read through it, by
// following the marker structure: marker segments with their lengths,
// and entropy-coded data, where 0xff is followed by a stuffed zero, a
// restart marker or the next marker. Past max scans it fails the read,
// so the decoder stops there.
//
// It also ends each read right after a scan's SOS marker, keeping the
// rest for the next read, and fails reads once ctx is done: the decoder
// must come back for every scan, so a deadline stops a many-scan file
// within one scan however small its scans are.
type scanCounter struct {
	ctx   context.Context
	r     io.Reader
	max   int
	scans int
	over  bool
	pend  []byte // read from r, not yet delivered nor scanned
	rerr  error  // r's error, delivered once pend is empty

	state   int // one of the cs* states
	skip    int // bytes of a segment left to skip
	inScan  bool
	lenHigh byte
}

const (
	csMarker = iota // expecting 0xff (or stray bytes) before a marker
	csCode          // after 0xff: the marker code (or fill 0xff)
	csLen1          // first byte of a segment length
	csLen2          // second byte
	csSkip          // inside a segment
	csData          // entropy-coded data
	csDataFF        // entropy-coded data, after 0xff
)

func (s *scanCounter) Read(p []byte) (int, error) {
	if s.over {
		return 0, errTooManyScans
	}
	if s.ctx.Err() != nil {
		return 0, context.Cause(s.ctx)
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	switch {
	case len(s.pend) > 0:
		n = copy(p, s.pend)
		s.pend = s.pend[n:]
	case s.rerr != nil:
		return 0, s.rerr
	default:
		n, s.rerr = s.r.Read(p)
	}
	k := s.feed(p[:n])
	if s.over {
		return k, errTooManyScans
	}
	if k < n {
		s.pend = append(append([]byte(nil), p[k:n]...), s.pend...)
	}
	if len(s.pend) == 0 && s.rerr != nil {
		return k, s.rerr
	}
	return k, nil
}

// feed follows the marker structure through b and returns how many bytes
// it took: all of b, or up to and including the code of an SOS marker, or
// of the scan one over the limit.
func (s *scanCounter) feed(b []byte) int {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case csMarker:
			if c == 0xff {
				s.state = csCode
			}
		case csCode:
			if s.code(c) {
				return i + 1
			}
		case csLen1:
			s.lenHigh, s.state = c, csLen2
		case csLen2:
			s.skip = int(s.lenHigh)<<8 | int(c) - 2
			s.state = csSkip
			if s.skip <= 0 {
				s.endSegment()
			}
		case csSkip:
			// Skip the rest of the segment at once.
			k := min(s.skip, len(b)-i)
			s.skip -= k
			i += k - 1
			if s.skip == 0 {
				s.endSegment()
			}
		case csData:
			if c == 0xff {
				s.state = csDataFF
			}
		case csDataFF:
			switch {
			case c == 0x00 || 0xd0 <= c && c <= 0xd7: // stuffed byte, restart marker
				s.state = csData
			case c == 0xff: // fill
			default:
				if s.code(c) {
					return i + 1
				}
			}
		}
	}
	return len(b)
}

// code handles a marker code, and says whether it starts a scan.
func (s *scanCounter) code(c byte) bool {
	switch {
	case c == 0xff: // fill byte
		s.state = csCode
	case c == 0x00 || c == 0x01 || c == 0xd8 || c == 0xd9 || 0xd0 <= c && c <= 0xd7:
		s.state = csMarker // no segment follows
	default:
		s.state = csLen1
		s.inScan = c == 0xda
		if s.inScan {
			s.scans++
			s.over = s.scans > s.max
			return true
		}
	}
	return false
}

func (s *scanCounter) endSegment() {
	if s.inScan {
		s.inScan = false
		s.state = csData
		return
	}
	s.state = csMarker
}

// deadlineReader fails reads once its context is done, with the context's
// cause (ErrTimeout when the generation ran past its deadline), and
// hands the decoder at most maxChunk bytes a read, so that a decoder
// working through a small, dense file still comes back to it often.
type deadlineReader struct {
	ctx context.Context
	r   io.Reader
}

const maxChunk = 4 << 10

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.ctx.Err() != nil {
		return 0, context.Cause(d.ctx)
	}
	if len(p) > maxChunk {
		p = p[:maxChunk]
	}
	return d.r.Read(p)
}
