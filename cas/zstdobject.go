package cas

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// EncodedObject is implemented by the Objects that Store.Open returns for
// blobs stored in an encoding (Info().Encoding != ""): the Object reads the
// decoded bytes, and Stored the bytes as stored, for a server that sends
// them as they are (cashttp sends a zstd blob to a client that accepts
// zstd with Content-Encoding: zstd, without decoding and recompressing).
type EncodedObject interface {
	Object
	// Stored returns the stored bytes, Info().StoredSize of them in
	// Info().Encoding, as an Object whose Info is this one's. It is a
	// cas.FileObject when the Backend's Objects are. It shares the
	// underlying object: read either the decoded bytes or the stored
	// ones, not both, and Close only this EncodedObject.
	Stored() Object
}

// zstdObject reads the decoded bytes of a blob stored in EncodingZstd,
// decompressing only the frames that reads touch.
type zstdObject struct {
	raw    Object // the stored bytes, behind the checked layer
	info   Info
	dec    *zstd.Decoder
	decode func() // counts a frame decoded

	table  *seekTable
	pos    int64 // decoded offset of the reader
	rawPos int64 // offset of raw; -1: unknown
	frame  int   // the frame in buf; -1: none
	buf    []byte
	stored []byte
	err    error // a sticky format error
}

var _ EncodedObject = (*zstdObject)(nil)

func (o *zstdObject) Info() Info { return o.info }

func (o *zstdObject) Close() error { return o.raw.Close() }

// Stored implements EncodedObject.
func (o *zstdObject) Stored() Object {
	o.rawPos = -1 // a caller of Stored moves raw
	if fo, ok := o.raw.(FileObject); ok {
		return storedFileObject{storedObject{fo, o.info}, fo}
	}
	return storedObject{o.raw, o.info}
}

// storedObject is the raw stored bytes of an encoded object.
type storedObject struct {
	Object
	info Info
}

func (s storedObject) Info() Info { return s.info }

// storedFileObject is a storedObject over a FileObject.
type storedFileObject struct {
	storedObject
	f FileObject
}

func (s storedFileObject) File() *os.File { return s.f.File() }

// Seek implements io.Seeker. It reads nothing.
func (o *zstdObject) Seek(offset int64, whence int) (int64, error) {
	abs, err := SeekOffset(o.pos, o.info.Size, offset, whence)
	if err != nil {
		return 0, fmt.Errorf("cas: seek %q: %w", o.info.Key, err)
	}
	o.pos = abs
	return abs, nil
}

// Read implements io.Reader.
func (o *zstdObject) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.pos >= o.info.Size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := o.load(); err != nil {
		return 0, o.fail(err)
	}
	i := o.table.find(o.pos)
	if i != o.frame {
		if err := o.decodeFrame(i); err != nil {
			return 0, o.fail(err)
		}
	}
	n := copy(p, o.buf[o.pos-o.table.dec[i]:])
	o.pos += int64(n)
	return n, nil
}

// fail remembers a corrupt object's error; other errors (a backend that
// did not answer, a cancelled context) may pass.
func (o *zstdObject) fail(err error) error {
	err = fmt.Errorf("cas: read %q: %w", o.info.Key, err)
	if errors.Is(err, ErrCorrupt) {
		o.err = err
	}
	return err
}

// load reads the seek table, once.
func (o *zstdObject) load() error {
	if o.table != nil {
		return nil
	}
	t, err := readSeekTable(rawReaderAt{o}, o.info.StoredSize)
	if err != nil {
		return err
	}
	if t.size() != o.info.Size {
		return fmt.Errorf("%w: seek table of %d bytes, recorded size %d", ErrCorrupt, t.size(), o.info.Size)
	}
	o.table = t
	return nil
}

// rawReaderAt reads the stored bytes at an offset.
type rawReaderAt struct{ o *zstdObject }

func (r rawReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.o.seekRaw(off); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(r.o.raw, p)
	r.o.rawPos += int64(n)
	return n, err
}

// seekRaw moves raw to off unless it is there: a sequential read goes on
// with the same backend read (one S3 GET).
func (o *zstdObject) seekRaw(off int64) error {
	if o.rawPos == off {
		return nil
	}
	o.rawPos = -1
	if _, err := o.raw.Seek(off, io.SeekStart); err != nil {
		return err
	}
	o.rawPos = off
	return nil
}

// decodeFrame decodes frame i into buf.
func (o *zstdObject) decodeFrame(i int) error {
	t := o.table
	clen, dlen := t.comp[i+1]-t.comp[i], t.dec[i+1]-t.dec[i]
	if int64(cap(o.stored)) < clen {
		o.stored = make([]byte, clen)
	}
	o.frame = -1
	if _, err := (rawReaderAt{o}).ReadAt(o.stored[:clen], t.comp[i]); err != nil {
		return readErr(err)
	}
	if int64(cap(o.buf)) < dlen {
		o.buf = make([]byte, 0, dlen)
	}
	// The decoder is limited to cap(dst): a frame cannot decode to more
	// than its table entry says.
	out, err := o.dec.DecodeAll(o.stored[:clen], o.buf[:0:dlen])
	o.decode()
	if err != nil {
		return fmt.Errorf("%w: frame %d: %w", ErrCorrupt, i, err)
	}
	if int64(len(out)) != dlen {
		return fmt.Errorf("%w: frame %d decodes to %d bytes, the seek table says %d", ErrCorrupt, i, len(out), dlen)
	}
	o.buf = out
	o.frame = i
	return nil
}
