package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/casa-go/casa/cas"
)

// errClosed is returned by Read and Seek on a closed object.
var errClosed = errors.New("s3store: object is closed")

// object is a lazily read S3 object. The body of a ranged GetObject stays
// open while reads continue where the previous one stopped; a Seek elsewhere
// drops it at the next Read, which starts a new ranged GetObject.
type object struct {
	ctx  context.Context
	b    *Backend
	full string
	info cas.Info
	etag string // the version Open saw; every GET asks for it with If-Match

	pos     int64         // the reader's offset
	body    io.ReadCloser // open GetObject body, or nil
	call    *call         // the GetObject of body: its stall watchdog
	bodyPos int64         // offset of the next byte body yields
	closed  bool
}

var _ cas.Object = (*object)(nil)

// Info implements cas.Object.
func (o *object) Info() cas.Info { return o.info }

// Read implements io.Reader with ranged GetObject calls.
func (o *object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, errClosed
	}
	if o.pos >= o.info.Size {
		o.dropBody()
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if o.body != nil && o.bodyPos != o.pos {
		o.dropBody()
	}
	if o.body == nil {
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
		// The response headers must come within the operation timeout,
		// then each Read must get a byte within the stall timeout. The
		// watchdog runs only while a Read waits for S3: a caller that
		// reads slowly (a slow HTTP client downstream) is no stall.
		c := o.b.transfer(o.ctx, "GetObject", o.full, o.b.opTimeout)
		out, err := o.b.client.GetObject(c.ctx, in, quietChecksumLog)
		if err != nil {
			err = c.err("read", o.info.Key, err, cas.ErrNotFound)
			c.end()
			return 0, err
		}
		c.disarm()
		o.body, o.bodyPos, o.call = out.Body, o.pos, c
	}
	if rest := o.info.Size - o.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	o.call.progress()
	n, err := o.body.Read(p)
	o.call.disarm()
	o.pos += int64(n)
	o.bodyPos += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		if _, ok := o.call.timedOut(); ok {
			err = o.call.err("read", o.info.Key, err)
			o.dropBody()
			return n, err
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		// A body that ends before Info().Size: the checked layer turns
		// the early EOF into io.ErrUnexpectedEOF.
		o.dropBody()
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	case err != nil:
		o.dropBody()
		return n, fmt.Errorf("s3store: read %q: %w", o.info.Key, err)
	}
	return n, nil
}

// Seek implements io.Seeker. It never transfers data.
func (o *object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, errClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.pos + offset
	case io.SeekEnd:
		abs = o.info.Size + offset
	default:
		return 0, fmt.Errorf("s3store: seek %q: invalid whence %d", o.info.Key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("s3store: seek %q: negative position %d", o.info.Key, abs)
	}
	o.pos = abs
	return abs, nil
}

// Close implements io.Closer. It closes any open response body; closing
// twice is not an error.
func (o *object) Close() error {
	o.closed = true
	o.dropBody()
	return nil
}

func (o *object) dropBody() {
	if o.body != nil {
		_ = o.body.Close()
		o.body = nil
		o.call.end()
		o.call = nil
	}
}
