package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/casa-go/casa/cas"
)

// errClosed is returned by Read and Seek on a closed object, and by a Read
// that Close interrupted.
var errClosed = errors.New("s3store: object is closed")

// object is a lazily read S3 object. The body of a ranged GetObject stays
// open while reads continue where the previous one stopped; a Seek elsewhere
// drops it at the next Read, which starts a new ranged GetObject.
//
// Read and Seek are not safe for concurrent use with each other, but Close
// is safe at any time, from any goroutine: net/http's ServeContent reads a
// multi-range response in a goroutine of its own that can outlive the
// handler, which then closes the object while that Read still waits for
// S3. Close ends the GetObject in flight, and the blocked Read returns
// errClosed. mu guards the fields below it; Read never holds it while it
// waits for S3, so Close never waits for a Read.
type object struct {
	ctx  context.Context
	b    *Backend
	full string
	info cas.Info
	etag string // the version Open saw; every GET asks for it with If-Match

	mu      sync.Mutex
	pos     int64         // the reader's offset
	body    io.ReadCloser // open GetObject body, or nil
	call    *call         // the GetObject of body, or the one in flight: its stall watchdog; or nil
	bodyPos int64         // offset of the next byte body yields
	closed  bool
}

var _ cas.Object = (*object)(nil)

// Info implements cas.Object.
func (o *object) Info() cas.Info { return o.info }

// Read implements io.Reader with ranged GetObject calls.
func (o *object) Read(p []byte) (int, error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return 0, errClosed
	}
	if o.pos >= o.info.StoredSize {
		o.dropBodyLocked()
		o.mu.Unlock()
		return 0, io.EOF
	}
	if len(p) == 0 {
		o.mu.Unlock()
		return 0, nil
	}
	if o.body != nil && o.bodyPos != o.pos {
		o.dropBodyLocked()
	}
	if o.body == nil {
		if err := o.get(); err != nil { // unlocks and locks again
			o.mu.Unlock()
			return 0, err
		}
	}
	if rest := o.info.StoredSize - o.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	// Local copies: Close may drop o.body and o.call while the read
	// waits; it closes the body, which ends the read.
	body, c := o.body, o.call
	o.mu.Unlock()

	c.progress()
	n, err := body.Read(p)
	c.disarm()

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return n, errClosed
	}
	o.pos += int64(n)
	o.bodyPos += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		if _, ok := c.timedOut(); ok {
			err = c.err("read", o.info.Key, err)
			o.dropBodyLocked()
			return n, err
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		// A body that ends before Info().Size: the checked layer turns
		// the early EOF into io.ErrUnexpectedEOF.
		o.dropBodyLocked()
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	case err != nil:
		o.dropBodyLocked()
		return n, fmt.Errorf("s3store: read %q: %w", o.info.Key, err)
	}
	return n, nil
}

// get starts a ranged GetObject from o.pos and makes its body o.body. It
// is called with o.mu held and returns with it held, but releases it while
// it waits for S3: the call is o.call meanwhile, so that Close can end it.
func (o *object) get() error {
	in := &s3.GetObjectInput{
		Bucket: &o.b.bucket,
		Key:    &o.full,
		Range:  aws.String("bytes=" + strconv.FormatInt(o.pos, 10) + "-"),
	}
	if o.etag != "" {
		// A key replaced after Open fails the read (412) instead of
		// mixing two versions' bytes.
		in.IfMatch = aws.String(o.etag)
	}
	// The response headers must come within the operation timeout, then
	// each Read must get a byte within the stall timeout. The watchdog
	// runs only while a Read waits for S3: a caller that reads slowly (a
	// slow HTTP client downstream) is no stall.
	c := o.b.transfer(o.ctx, "GetObject", o.full, o.b.opTimeout)
	o.call = c
	pos := o.pos
	o.mu.Unlock()
	out, err := o.b.client.GetObject(c.ctx, in, quietChecksumLog)
	o.mu.Lock()
	if o.closed {
		// Close ended c (which failed the GetObject, or came too late
		// to); the body, if any, is this Read's to close.
		if err == nil {
			_ = out.Body.Close()
		}
		return errClosed
	}
	if err != nil {
		err = c.err("read", o.info.Key, err, cas.ErrNotFound)
		o.call = nil
		c.end()
		return err
	}
	c.disarm()
	o.body, o.bodyPos = out.Body, pos
	return nil
}

// Seek implements io.Seeker. It never transfers data.
func (o *object) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, errClosed
	}
	abs, err := cas.SeekOffset(o.pos, o.info.StoredSize, offset, whence)
	if err != nil {
		return 0, fmt.Errorf("s3store: seek %q: %w", o.info.Key, err)
	}
	o.pos = abs
	return abs, nil
}

// Close implements io.Closer. It closes any open response body and ends a
// GetObject in flight, so that a Read blocked in another goroutine returns
// an error at once; closing twice is not an error.
func (o *object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.dropBodyLocked()
	return nil
}

// dropBodyLocked ends the current GetObject, if any: it closes the body
// and ends the call, either of which fails a Read waiting on it (a call
// without a body is a GetObject waiting for its headers). o.mu is held;
// neither waits for the Read.
func (o *object) dropBodyLocked() {
	if o.body != nil {
		_ = o.body.Close()
		o.body = nil
	}
	if o.call != nil {
		o.call.end()
		o.call = nil
	}
}
