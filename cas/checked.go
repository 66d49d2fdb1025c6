package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"os"
	"strings"
)

// Checked returns b behind the checked layer: the one place in casa that
// owns the invariants of a Backend, so that a Backend itself stays thin
// (see Backend). Every call through the returned Backend
//
//   - fails at once with ctx's error once ctx is done, and a read of an
//     opened Object fails once the ctx given to Open is done;
//   - validates its key with CheckKey (one rule for every Backend), and
//     a Put under a derived prefix (IsDerivedKey) is refused unless its key
//     is a DerivedKey: prefix, 64 lowercase hex, "_" and a name;
//   - for Put, yields the Backend exactly size bytes (a reader that holds
//     fewer or more fails the Put: the Backend sees a read error and stores
//     nothing), and verifies PutOptions.SHA256 while the Backend reads: the
//     Read that would deliver the last bytes returns an error wrapping
//     ErrDigestMismatch instead, so the Backend never sees a complete body
//     that does not match. A Put under a blob key cas/<hex> carries
//     SHA256 = <hex>: filled in when unset, ErrDigestMismatch when it
//     differs. A negative size fails;
//   - for Open, returns an Object whose reads end at exactly Info().Size:
//     a body that ends early fails with io.ErrUnexpectedEOF, never a short
//     read that looks complete. When the Backend's Object is a FileObject,
//     so is the checked Object (its file holds exactly Size bytes by the
//     FileObject contract).
//
// The returned Backend implements Stager when b does; a Staged's Commit
// validates its key and context the same way. Checked of a checked Backend
// returns it unchanged. Store, thumbnail.NewBackendCache and migrate call
// their Backends through Checked.
func Checked(b Backend) Backend {
	switch b.(type) {
	case *checked, *checkedStager:
		return b
	}
	return checkedOf(b).wrap()
}

// checkedOf returns the checked layer over b, reusing b when it is one.
func checkedOf(b Backend) *checked {
	switch c := b.(type) {
	case *checked:
		return c
	case *checkedStager:
		return &c.checked
	}
	return &checked{b: b, newHash: sha256.New}
}

// wrap returns c as the Backend to hand out: a Stager when its Backend is.
func (c *checked) wrap() Backend {
	if _, ok := c.b.(Stager); ok {
		return &checkedStager{*c}
	}
	return c
}

// checked is the checked layer over one Backend.
type checked struct {
	b       Backend
	newHash func() hash.Hash // sha256.New; a counting hasher in tests
}

// checkedStager is a checked Backend that is also a Stager.
type checkedStager struct{ checked }

var (
	_ Backend = (*checked)(nil)
	_ Stager  = (*checkedStager)(nil)
)

// checkCall validates ctx and key before a call.
func checkCall(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return CheckKey(key)
}

// Stat implements Backend.
func (c *checked) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkCall(ctx, key); err != nil {
		return Info{}, err
	}
	return c.b.Stat(ctx, key)
}

// Open implements Backend.
func (c *checked) Open(ctx context.Context, key string) (Object, error) {
	if err := checkCall(ctx, key); err != nil {
		return nil, err
	}
	obj, err := c.b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	co := &checkedObject{ctx: ctx, obj: obj, size: obj.Info().Size}
	if fo, ok := obj.(FileObject); ok {
		return &checkedFileObject{checkedObject: co, f: fo}, nil
	}
	return co, nil
}

// Delete implements Backend.
func (c *checked) Delete(ctx context.Context, key string) error {
	if err := checkCall(ctx, key); err != nil {
		return err
	}
	return c.b.Delete(ctx, key)
}

// List implements Backend. Keys are yielded as the Backend lists them; the
// iteration ends with ctx's error once ctx is done.
func (c *checked) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(Info{}, err)
			return
		}
		for info, err := range c.b.List(ctx, prefix) {
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				yield(Info{}, err)
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// Put implements Backend.
func (c *checked) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	return c.put(ctx, key, r, size, opts, false)
}

// put is Put; with hashed, the caller (Store) has already hashed the bytes
// r yields to opts.SHA256, and the layer does not hash them again.
func (c *checked) put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions, hashed bool) error {
	if err := checkCall(ctx, key); err != nil {
		return err
	}
	if IsDerivedKey(key) && !isDerivedKeyShape(key) {
		return fmt.Errorf("%w: %q: a key under a derived prefix must be prefix + <64 lowercase hex> + \"_\" + name", ErrInvalidKey, key)
	}
	if h, err := ParseKey(key); err == nil {
		switch {
		case opts.SHA256.IsZero():
			opts.SHA256 = h
		case opts.SHA256 != h:
			return fmt.Errorf("cas: put %q: %w: SHA256 %s is not the key's", key, ErrDigestMismatch, opts.SHA256)
		}
	}
	if size < 0 {
		return fmt.Errorf("cas: put %q: negative size %d", key, size)
	}
	if opts.SHA256.IsZero() {
		hashed = true // nothing to verify
	}
	cr := &checkedReader{ctx: ctx, r: r, size: size, want: opts.SHA256}
	if !hashed {
		cr.d = c.newHash()
	}
	body := io.Reader(cr)
	if size == 0 {
		// A Backend may send an empty body without reading it (the AWS
		// SDK does): check r here, before anything is stored.
		if _, err := cr.Read(nil); err != nil && err != io.EOF {
			return fmt.Errorf("cas: put %q: %w", key, err)
		}
	} else if rs, ok := r.(io.ReadSeeker); ok {
		base, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("cas: put %q: seek body: %w", key, err)
		}
		body = &checkedSeeker{checkedReader: cr, rs: rs, base: base}
	}
	err := c.b.Put(ctx, key, body, size, opts)
	if cr.err != nil {
		// The body failed (short, long, wrong digest, cancelled): say so
		// first, whatever the Backend made of it.
		if err == nil {
			return fmt.Errorf("cas: put %q: %w (the backend reported success: it stored a body that failed)", key, cr.err)
		}
		return fmt.Errorf("cas: put %q: %w (%w)", key, cr.err, err)
	}
	if err == nil && !cr.done {
		return fmt.Errorf("cas: put %q: the backend returned before reading %d bytes (read %d)", key, size, cr.pos)
	}
	return err
}

// isDerivedKeyShape reports whether key is prefix + hex + "_" + name for a
// derived prefix.
func isDerivedKeyShape(key string) bool {
	for _, p := range DerivedPrefixes() {
		rest, ok := strings.CutPrefix(key, p)
		if !ok {
			continue
		}
		hex, name, ok := strings.Cut(rest, "_")
		if _, err := Parse(hex); ok && err == nil && name != "" {
			return true
		}
	}
	return false
}

// Stage implements Stager.
func (c *checkedStager) Stage(ctx context.Context) (Staged, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := c.b.(Stager).Stage(ctx)
	if err != nil {
		return nil, err
	}
	return checkedStaged{st}, nil
}

// checkedStaged validates the key and context of a Commit.
type checkedStaged struct{ Staged }

func (s checkedStaged) Commit(ctx context.Context, key string) error {
	if err := checkCall(ctx, key); err != nil {
		_ = s.Abort()
		return err
	}
	return s.Staged.Commit(ctx, key)
}

// errTooLong: a Put's reader holds more bytes than the declared size.
var errTooLong = errors.New("cas: body longer than the declared size")

// checkedReader yields exactly size bytes of r to a Backend, hashing them
// into d (when set) and checking the digest before it yields the last
// bytes. Every failure is remembered in err and returned by every later
// Read, so a Backend that retries cannot get past it.
type checkedReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
	want Hash
	d    hash.Hash // nil: do not hash

	pos    int64 // bytes yielded
	hashed int64 // bytes hashed, from offset 0
	done   bool  // the last byte was yielded, r ended there, the digest matched
	err    error // the first failure
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func (c *checkedReader) read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	rest := c.size - c.pos
	if rest <= 0 {
		if !c.done {
			if err := c.finish(); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) < rest {
		n, err := c.r.Read(p)
		c.advance(p[:n])
		if errors.Is(err, io.EOF) {
			return n, c.short()
		}
		return n, err
	}
	// The last bytes: hold them back until r is known to end here and the
	// digest matches, so that a Backend never receives a complete body
	// that is too long or wrong.
	n, err := io.ReadFull(c.r, p[:rest])
	if err != nil {
		c.advance(p[:n])
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return n, c.short()
		}
		return n, err
	}
	c.advance(p[:n])
	if err := c.finish(); err != nil {
		return 0, err
	}
	return n, nil
}

// advance counts and hashes the bytes b just read at c.pos.
func (c *checkedReader) advance(b []byte) {
	// Bytes before the hashed frontier were hashed already (the body was
	// rewound); hash only what lies beyond it.
	if end := c.pos + int64(len(b)); c.d != nil && c.pos <= c.hashed && c.hashed < end {
		c.d.Write(b[c.hashed-c.pos:])
		c.hashed = end
	}
	c.pos += int64(len(b))
}

// finish checks, with every byte read, that r ends and the digest matches.
func (c *checkedReader) finish() error {
	if err := checkEOF(c.r); err != nil {
		return err
	}
	if c.d != nil {
		if c.hashed != c.size {
			return fmt.Errorf("cas: body read out of order (%d of %d bytes hashed): cannot verify its digest", c.hashed, c.size)
		}
		var got Hash
		c.d.Sum(got[:0])
		if got != c.want {
			return fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, c.want, got)
		}
	}
	c.done = true
	return nil
}

func (c *checkedReader) short() error {
	return fmt.Errorf("cas: body of %d bytes, declared %d: %w", c.pos, c.size, io.ErrUnexpectedEOF)
}

// checkEOF fails unless r is at EOF.
func checkEOF(r io.Reader) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return errTooLong
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// checkedSeeker is a checkedReader over an io.ReadSeeker, so that a
// Backend can rewind the body (the AWS SDK does, to retry). Offsets are
// relative to where the ReadSeeker was when the Put began. A Seek to the
// start restarts the digest.
type checkedSeeker struct {
	*checkedReader
	rs   io.ReadSeeker
	base int64
}

func (c *checkedSeeker) Seek(offset int64, whence int) (int64, error) {
	if c.err != nil {
		return 0, c.err
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = c.pos + offset
	case io.SeekEnd:
		abs = c.size + offset
	default:
		return 0, errors.New("cas: seek body: invalid whence")
	}
	if abs < 0 || abs > c.size {
		return 0, fmt.Errorf("cas: seek body to %d, outside %d bytes", abs, c.size)
	}
	if abs == c.pos {
		return abs, nil
	}
	if _, err := c.rs.Seek(c.base+abs, io.SeekStart); err != nil {
		return 0, err
	}
	c.pos = abs
	c.done = false
	if abs == 0 && c.d != nil {
		c.d.Reset()
		c.hashed = 0
	}
	return abs, nil
}

// checkedObject reads exactly size bytes of an Object, failing reads once
// ctx is done.
type checkedObject struct {
	ctx  context.Context
	obj  Object
	size int64
	pos  int64
}

func (o *checkedObject) Info() Info { return o.obj.Info() }

func (o *checkedObject) Close() error { return o.obj.Close() }

func (o *checkedObject) Read(p []byte) (int, error) {
	if err := o.ctx.Err(); err != nil {
		return 0, err
	}
	if o.pos >= o.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	if rest := o.size - o.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := o.obj.Read(p)
	o.pos += int64(n)
	if errors.Is(err, io.EOF) && o.pos < o.size {
		return n, fmt.Errorf("cas: read %q: object ended at %d of %d bytes: %w", o.obj.Info().Key, o.pos, o.size, io.ErrUnexpectedEOF)
	}
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil // the next Read says EOF
	}
	return n, err
}

func (o *checkedObject) Seek(offset int64, whence int) (int64, error) {
	if err := o.ctx.Err(); err != nil {
		return 0, err
	}
	pos, err := o.obj.Seek(offset, whence)
	if err == nil {
		o.pos = pos
	}
	return pos, err
}

// checkedFileObject is a checkedObject over a FileObject.
type checkedFileObject struct {
	*checkedObject
	f FileObject
}

var _ FileObject = (*checkedFileObject)(nil)

func (o *checkedFileObject) File() *os.File { return o.f.File() }
