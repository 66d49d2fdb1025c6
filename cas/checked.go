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
	"sync"
	"unicode/utf8"
)

// Checked returns b behind the checked layer: the one place in casa that
// owns the invariants of a Backend, so that a Backend itself stays thin
// (see Backend). Every call through the returned Backend
//
//   - fails at once with ctx's error once ctx is done, and a read of an
//     opened Object fails once the ctx given to Open is done;
//   - validates its key. There is one rule for what may be written, and
//     any key a Backend holds can be read, migrated and deleted: Put (and
//     a Staged's Commit) apply CheckKey, and a key under a derived prefix
//     (IsDerivedKey) must be a DerivedKey: prefix, 64 lowercase hex, "_"
//     and a name. Stat, Open and Delete take any key that is non-empty,
//     at most MaxKeyLen bytes and valid UTF-8, so that legacy keys written
//     before casa ("/uploads/a.pdf", "a//b", "C:\scans\c.pdf", ".well-known/x")
//     can be migrated and cleaned up; a Backend may still refuse a key it
//     cannot address (fsstore applies CheckKey to every key, for path
//     safety), with an error wrapping ErrInvalidKey;
//   - for Put, yields the Backend exactly size bytes (a reader that holds
//     fewer or more fails the Put: the Backend sees a read error and stores
//     nothing), and verifies PutOptions.SHA256 while the Backend reads: the
//     Read that would deliver the last bytes returns an error wrapping
//     ErrDigestMismatch instead, so the Backend never sees a complete body
//     that does not match. A Put under a blob key cas/<hex> carries
//     SHA256 = <hex>: filled in when unset, ErrDigestMismatch when it
//     differs. A negative size fails. A reader that returns no bytes and
//     no error 100 times in a row fails with io.ErrNoProgress. Put returns
//     only once no Read of r is in progress, and never reads r after it
//     returns, even when the Backend left a goroutine reading the body (as
//     net/http's transport may after an early response);
//   - for Open, returns an Object whose reads end at exactly
//     Info().StoredSize (Info().Size unless the object is encoded):
//     a body that ends early fails with io.ErrUnexpectedEOF, never a short
//     read that looks complete. When the Backend's Object is a FileObject,
//     so is the checked Object (its file holds exactly Size bytes by the
//     FileObject contract). The checked Object has no WriteTo or ReadAt:
//     io.Copy reads it through Read; a caller that wants the kernel to
//     send the bytes uses FileObject's File.
//
// An encoded object (Info().Encoding set: a blob a Store stored
// compressed) reads as its StoredSize stored bytes through the layer;
// Store.Open decodes them. Info's StoredSize is filled in (= Size) for a
// plain object of a Backend that leaves it 0. An encoded Put is refused
// with ErrUnsupported unless a Store makes it (the layer could not check
// that the decoded bytes hash to the key).
//
// The returned Backend implements Presigner when b does (see Presigner for
// what the layer checks). It is never a KeyLister: ListKeys looks through it
// to b's, checking the context as List does. It implements Stager when b does. Its Staged hashes
// the bytes written to it, is a StagedReplacer when b's is (CommitReplace
// checks as Commit does), and its Commit validates the key and context as
// Put does and, under a blob key cas/<hex>, fails with ErrDigestMismatch
// and publishes nothing unless the bytes hash to <hex>. Checked of a
// checked Backend returns it unchanged. Store, thumbnail.NewBackendCache
// and migrate call their Backends through Checked.
func Checked(b Backend) Backend {
	switch b.(type) {
	case *checked, *checkedStager, *checkedPresigner, *checkedStagerPresigner:
		return b
	}
	return checkedOf(b).wrap()
}

// checkHeldKey reports why key cannot be a key that a Backend holds, or
// nil: it must be non-empty, at most MaxKeyLen bytes and valid UTF-8. It is
// the rule for reads and Deletes, which must reach every key a Backend
// holds; CheckKey, the rule for writes, is stricter.
func checkHeldKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	return nil
}

// checkedOf returns the checked layer over b, reusing b when it is one.
func checkedOf(b Backend) *checked {
	switch c := b.(type) {
	case *checked:
		return c
	case *checkedStager:
		return &c.checked
	case *checkedPresigner:
		return &c.checked
	case *checkedStagerPresigner:
		return &c.checked
	}
	return &checked{b: b, newHash: sha256.New}
}

// wrap returns c as the Backend to hand out: a Stager when its Backend is,
// a Presigner when its Backend is.
func (c *checked) wrap() Backend {
	_, stager := c.b.(Stager)
	_, presigner := c.b.(Presigner)
	switch {
	case stager && presigner:
		return &checkedStagerPresigner{checkedStager{*c}}
	case stager:
		return &checkedStager{*c}
	case presigner:
		return &checkedPresigner{*c}
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

// checkWrite validates ctx and key before a write: CheckKey, and the shape
// of a derived key.
func checkWrite(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	if IsDerivedKey(key) && !isDerivedKeyShape(key) {
		return fmt.Errorf("%w: %q: a key under a derived prefix must be prefix + <64 lowercase hex> + \"_\" + name", ErrInvalidKey, key)
	}
	return nil
}

// checkRead validates ctx and key before a read or a Delete: any key a
// Backend can hold passes (see checkHeldKey).
func checkRead(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkHeldKey(key)
}

// Stat implements Backend.
func (c *checked) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkRead(ctx, key); err != nil {
		return Info{}, err
	}
	info, err := c.b.Stat(ctx, key)
	return normalize(info), err
}

// normalize fills in the StoredSize of a plain object from a Backend
// written before Info had one.
func normalize(info Info) Info {
	if info.Encoding == "" && info.StoredSize == 0 {
		info.StoredSize = info.Size
	}
	return info
}

// Open implements Backend.
func (c *checked) Open(ctx context.Context, key string) (Object, error) {
	if err := checkRead(ctx, key); err != nil {
		return nil, err
	}
	obj, err := c.b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	// The reads yield the stored bytes: StoredSize of them.
	info := normalize(obj.Info())
	co := &checkedObject{ctx: ctx, obj: obj, info: info, size: info.StoredSize}
	if fo, ok := obj.(FileObject); ok {
		return &checkedFileObject{checkedObject: co, f: fo}, nil
	}
	return co, nil
}

// Delete implements Backend.
func (c *checked) Delete(ctx context.Context, key string) error {
	if err := checkRead(ctx, key); err != nil {
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
			if !yield(normalize(info), nil) {
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
	if err := checkWrite(ctx, key); err != nil {
		return err
	}
	if opts.Encoding != "" {
		switch {
		case !hashed:
			// Nothing here could check that the decoded bytes hash to
			// the key: only a Store, which hashed them, writes them.
			return fmt.Errorf("cas: put %q: %w: an encoded (%q) body is written by a Store only", key, ErrUnsupported, opts.Encoding)
		case opts.Encoding != EncodingZstd:
			return fmt.Errorf("cas: put %q: %w: encoding %q", key, ErrUnsupported, opts.Encoding)
		case opts.DecodedSize < 0 || !opts.SHA256.IsZero():
			return fmt.Errorf("cas: put %q: encoded body with decoded size %d and a SHA256 of the stored bytes", key, opts.DecodedSize)
		}
	} else if h, err := ParseKey(key); err == nil {
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
	cr := &checkedReader{ctx: ctx, r: &progressReader{r: r}, size: size, want: opts.SHA256}
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
	// The Backend may have left a goroutine reading the body (net/http's
	// transport does after an early response): detach the body from r
	// before reading its state.
	st := cr.detach()
	if st.err != nil {
		// The body failed (short, long, wrong digest, cancelled): say so
		// first, whatever the Backend made of it.
		if err == nil {
			return fmt.Errorf("cas: put %q: %w (the backend reported success: it stored a body that failed)", key, st.err)
		}
		return fmt.Errorf("cas: put %q: %w (%w)", key, st.err, err)
	}
	if err == nil && !st.done {
		return fmt.Errorf("cas: put %q: the backend returned before reading %d bytes (read %d)", key, size, st.pos)
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
	return c.stage(ctx, false)
}

// stage is Stage; with hashed, the caller (Store) hashes the bytes it
// writes and commits them under their own blob key, and the layer does not
// hash them again. c's Backend must be a Stager.
func (c *checked) stage(ctx context.Context, hashed bool) (Staged, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := c.b.(Stager).Stage(ctx)
	if err != nil {
		return nil, err
	}
	s := &checkedStaged{ctx: ctx, st: st}
	if !hashed {
		s.d = c.newHash()
	}
	if r, ok := st.(StagedReplacer); ok {
		return &checkedStagedReplacer{checkedStaged: s, r: r}, nil
	}
	return s, nil
}

// checkedStaged is a Staged behind the checked layer: its Writes fail once
// the ctx given to Stage is done, and its Commit validates the key and
// context as a Put does and checks a blob key against the hash of the
// bytes written.
type checkedStaged struct {
	ctx context.Context // Stage's
	st  Staged
	d   hash.Hash // the bytes written; nil: the caller hashes them (Store)
	n   int64     // bytes written
}

func (s *checkedStaged) Write(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.st.Write(p)
	if n < 0 || n > len(p) {
		return 0, fmt.Errorf("cas: stage: the backend's Write of %d bytes returned %d", len(p), n)
	}
	if s.d != nil {
		s.d.Write(p[:n])
	}
	s.n += int64(n)
	return n, err
}

// Commit implements Staged. A Commit that fails its checks aborts the
// staged bytes: nothing is published.
func (s *checkedStaged) Commit(ctx context.Context, key string) error {
	if err := s.check(ctx, key); err != nil {
		_ = s.st.Abort()
		return err
	}
	return s.st.Commit(ctx, key)
}

func (s *checkedStaged) check(ctx context.Context, key string) error {
	if err := checkWrite(ctx, key); err != nil {
		return err
	}
	if h, err := ParseKey(key); err == nil && s.d != nil {
		var got Hash
		s.d.Sum(got[:0])
		if got != h {
			return fmt.Errorf("cas: commit %q: %w: the %d bytes staged hash to %s", key, ErrDigestMismatch, s.n, got)
		}
	}
	return nil
}

// Abort implements Staged.
func (s *checkedStaged) Abort() error { return s.st.Abort() }

// stageEncoded starts a staged object that a Store can commit encoded
// (EncodedCommitter), or returns nil when c's Backend cannot take one.
func (c *checked) stageEncoded(ctx context.Context) (*checkedStaged, error) {
	if _, ok := c.b.(Stager); !ok {
		return nil, nil
	}
	st, err := c.stage(ctx, true)
	if err != nil {
		return nil, err
	}
	var s *checkedStaged
	switch st := st.(type) {
	case *checkedStaged:
		s = st
	case *checkedStagedReplacer:
		s = st.checkedStaged
	}
	if _, ok := s.st.(EncodedCommitter); !ok {
		_ = s.st.Abort()
		return nil, nil
	}
	return s, nil
}

// commitEncoded is EncodedCommitter's CommitEncoded for a Store, which
// hashed the decoded bytes and names them by key: it validates key,
// context and options as an encoded Put does, and aborts the staged bytes
// when they fail.
func (s *checkedStaged) commitEncoded(ctx context.Context, key string, opts PutOptions) error {
	ec, ok := s.st.(EncodedCommitter)
	err := checkWrite(ctx, key)
	switch {
	case err != nil:
	case !ok:
		err = fmt.Errorf("cas: commit %q: %w: the backend's Staged cannot commit encoded bytes", key, ErrUnsupported)
	case s.d != nil:
		err = fmt.Errorf("cas: commit %q: %w: encoded bytes are committed by a Store only", key, ErrUnsupported)
	case !IsKey(key):
		err = fmt.Errorf("cas: commit %q: %w: only blob keys are stored encoded", key, ErrInvalidKey)
	case opts.Encoding != EncodingZstd:
		err = fmt.Errorf("cas: commit %q: %w: encoding %q", key, ErrUnsupported, opts.Encoding)
	case opts.DecodedSize < 0 || !opts.SHA256.IsZero():
		err = fmt.Errorf("cas: commit %q: encoded bytes with decoded size %d and a SHA256 of the stored bytes", key, opts.DecodedSize)
	}
	if err != nil {
		_ = s.st.Abort()
		return err
	}
	return ec.CommitEncoded(ctx, key, opts)
}

// checkedStagedReplacer is a checkedStaged over a StagedReplacer.
type checkedStagedReplacer struct {
	*checkedStaged
	r StagedReplacer
}

var _ StagedReplacer = (*checkedStagedReplacer)(nil)

// CommitReplace implements StagedReplacer with Commit's checks: one that
// fails them aborts the staged bytes.
func (s *checkedStagedReplacer) CommitReplace(ctx context.Context, key string) error {
	if err := s.check(ctx, key); err != nil {
		_ = s.st.Abort()
		return err
	}
	return s.r.CommitReplace(ctx, key)
}

// errTooLong: a Put's reader holds more bytes than the declared size.
var errTooLong = errors.New("cas: body longer than the declared size")

// errDetached: the Backend read a Put's body after its Put returned.
var errDetached = errors.New("cas: body read after the backend's Put returned")

// maxEmptyReads is how many Reads in a row may return no bytes and no
// error before the body fails with io.ErrNoProgress (bufio.Reader's
// limit).
const maxEmptyReads = 100

// progressReader fails with io.ErrNoProgress once r has returned no bytes
// and no error maxEmptyReads times in a row, so that no loop over it
// (io.ReadFull, checkEOF, a Backend's copy) spins forever.
type progressReader struct {
	r     io.Reader
	empty int
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n != 0 || err != nil || len(b) == 0 {
		p.empty = 0
		return n, err
	}
	p.empty++
	if p.empty >= maxEmptyReads {
		return 0, fmt.Errorf("cas: body returned nothing %d times in a row: %w", p.empty, io.ErrNoProgress)
	}
	return 0, nil
}

// checkedReader yields exactly size bytes of r to a Backend, hashing them
// into d (when set) and checking the digest before it yields the last
// bytes. Every failure is remembered in err and returned by every later
// Read, so a Backend that retries cannot get past it.
//
// Read and Seek hold mu for their whole call, r's Read included, and detach
// takes it to read the outcome: a goroutine the Backend left reading races
// neither with the Put nor, once detached, with the caller's next use of r.
type checkedReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
	want Hash
	d    hash.Hash // nil: do not hash

	mu       sync.Mutex
	pos      int64 // bytes yielded
	hashed   int64 // bytes hashed, from offset 0
	done     bool  // the last byte was yielded, r ended there, the digest matched
	err      error // the first failure
	detached bool  // the Put returned: r is the caller's again
}

// readState is the outcome of a checkedReader, read by detach.
type readState struct {
	pos  int64
	done bool
	err  error
}

// detach ends the body's use of r, waiting for a Read in progress, and
// returns its state: every later Read and Seek fails.
func (c *checkedReader) detach() readState {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.detached = true
	return readState{pos: c.pos, done: c.done, err: c.err}
}

// failed returns the error every call fails with, if any. c.mu is held.
func (c *checkedReader) failed() error {
	if c.detached {
		return errDetached
	}
	return c.err
}

func (c *checkedReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.failed(); err != nil {
		return 0, err
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

// checkEOF fails unless r is at EOF. A reader that returns no bytes and no
// error maxEmptyReads times in a row fails with io.ErrNoProgress.
func checkEOF(r io.Reader) error {
	var one [1]byte
	for range maxEmptyReads {
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
	return fmt.Errorf("cas: body returned nothing %d times in a row at its end: %w", maxEmptyReads, io.ErrNoProgress)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.failed(); err != nil {
		return 0, err
	}
	abs, err := SeekOffset(c.pos, c.size, offset, whence)
	if err != nil {
		return 0, fmt.Errorf("cas: seek body: %w", err)
	}
	if abs > c.size {
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
	info Info
	size int64
	pos  int64
}

func (o *checkedObject) Info() Info { return o.info }

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
