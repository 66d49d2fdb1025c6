package cashttp

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// blockingObject is a ReadSeekCloser whose Reads wait for release, and
// that counts Closes and the calls made after a Close.
type blockingObject struct {
	r          *strings.Reader
	entered    chan struct{} // a Read began
	release    chan struct{} // lets the waiting Reads go on
	closes     atomic.Int32
	afterClose atomic.Int32
}

func (o *blockingObject) Read(p []byte) (int, error) {
	if o.closes.Load() > 0 {
		o.afterClose.Add(1)
	}
	o.entered <- struct{}{}
	<-o.release
	return 0, errors.New("read failed")
}

func (o *blockingObject) Seek(off int64, whence int) (int64, error) {
	if o.closes.Load() > 0 {
		o.afterClose.Add(1)
	}
	return o.r.Seek(off, whence)
}

func (o *blockingObject) Close() error { o.closes.Add(1); return nil }

// TestSourceFinishWaitsForReadInFlight: the handler's finish does not close
// the object under a Read in flight (ServeContent's multi-range goroutine);
// that Read closes it when it returns, and records its error without a
// race; after finish, Reads and Seeks fail without touching the object.
func TestSourceFinishWaitsForReadInFlight(t *testing.T) {
	t.Parallel()
	obj := &blockingObject{r: strings.NewReader("abc"), entered: make(chan struct{}, 1), release: make(chan struct{})}
	src := &source{ReadSeeker: obj, closer: obj}
	_, err := src.Seek(1, io.SeekStart)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := src.Read(make([]byte, 1))
		done <- err
	}()
	<-obj.entered
	src.finish()
	readErr, seekErr := src.errs() // concurrent with the Read: no race
	require.NoError(t, readErr)
	require.NoError(t, seekErr)
	require.Zero(t, obj.closes.Load(), "closed under a Read in flight")

	close(obj.release)
	require.EqualError(t, <-done, "read failed")
	require.EqualValues(t, 1, obj.closes.Load(), "the Read in flight closed it when it returned")
	readErr, _ = src.errs()
	require.EqualError(t, readErr, "read failed")

	_, err = src.Read(make([]byte, 1))
	require.ErrorIs(t, err, errResponseEnded)
	_, err = src.Seek(0, io.SeekStart)
	require.ErrorIs(t, err, errResponseEnded)
	src.finish()
	require.Zero(t, obj.afterClose.Load(), "no call reached the object after its Close")
	require.EqualValues(t, 1, obj.closes.Load(), "closed once")
}

// TestSourceFinishClosesIdleObject: with nothing in flight, finish closes
// the object at once, and only once.
func TestSourceFinishClosesIdleObject(t *testing.T) {
	t.Parallel()
	obj := &blockingObject{r: strings.NewReader("abc")}
	src := &source{ReadSeeker: obj, closer: obj}
	src.finish()
	src.finish()
	require.EqualValues(t, 1, obj.closes.Load())
	_, err := src.Read(make([]byte, 1))
	require.ErrorIs(t, err, errResponseEnded)
	require.Zero(t, obj.afterClose.Load())
	var none *source
	readErr, seekErr := none.errs()
	require.NoError(t, readErr)
	require.NoError(t, seekErr)
}
