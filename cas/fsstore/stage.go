package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/casa-go/casa/cas"
)

// writebackChunk is how many bytes a staged file accumulates before its
// writeback to disk is started, and a background fdatasync of it, so that
// the fdatasync at publish has little left to do (see syncing).
const writebackChunk = 8 << 20

// Stage implements cas.Stager: the returned cas.Staged writes into a
// temporary file under the root, and Commit publishes it create-only.
func (b *Backend) Stage(ctx context.Context) (cas.Staged, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.stage()
}

// staged is a temporary file being written. It is used by one goroutine at
// a time; only its background fdatasync (sync) runs beside it.
type staged struct {
	b       *Backend
	f       *os.File
	n       int64    // bytes written
	flushed int64    // bytes whose writeback has been started
	sync    *syncing // the latest background fdatasync; nil: none yet
	synced  int64    // bytes written when sync started
	closed  bool     // f is closed
	done    bool     // committed or aborted
}

// syncing is one background fdatasync of a staged file.
//
// Why: on a disk with a volatile write cache (virtual disks above all) an
// fdatasync costs about as long as writing the bytes it covers, even when
// the kernel wrote them back long before: it flushes the cache. One
// fdatasync at publish therefore adds the whole flush to every Put, after
// the last byte is hashed. Syncing every writebackChunk in the background
// flushes while the caller still hashes and writes, and leaves publish a
// chunk at most to flush.
//
// A background fdatasync's error is kept, not dropped: Linux reports a
// writeback error to one fdatasync per open file only, so the final one
// would succeed and publish bytes that never reached the disk.
type syncing struct {
	done chan struct{} // closed when the fdatasync has returned
	err  error         // its error; read only after done is closed
}

var errFinished = errors.New("fsstore: staged object already committed or aborted")

var _ cas.StagedReplacer = (*staged)(nil)

// lockTries is how often stage creates a temporary file when a concurrent
// sweep (another process's New) takes each one between its creation and
// its lock.
const lockTries = 5

func (b *Backend) stage() (*staged, error) {
	for range lockTries {
		f, err := os.CreateTemp(b.tmp, "put-*")
		if err != nil {
			return nil, fmt.Errorf("fsstore: stage: %w", noSpace(b.tmp, err))
		}
		// The lock marks the file as being written until it is closed or
		// this process dies; New removes temporary files nobody holds.
		held, err := lockTemp(f)
		if err != nil || !held {
			_ = f.Close()
			if err != nil {
				_ = os.Remove(f.Name())
				return nil, fmt.Errorf("fsstore: stage: lock: %w", err)
			}
			continue // lost to a sweep, which removes it
		}
		// Published files are read-only; the open descriptor stays writable.
		if err := f.Chmod(0o444); err != nil {
			_ = os.Remove(f.Name())
			_ = f.Close()
			return nil, fmt.Errorf("fsstore: stage: %w", err)
		}
		return &staged{b: b, f: f}, nil
	}
	return nil, fmt.Errorf("fsstore: stage: %d temporary files in %s were swept before they could be locked", lockTries, b.tmp)
}

// Write implements io.Writer.
func (s *staged) Write(p []byte) (int, error) {
	if s.done {
		return 0, errFinished
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("fsstore: stage: %w", noSpace(s.f.Name(), err))
	}
	if !s.b.noSync && s.n-s.flushed >= writebackChunk {
		startWriteback(s.f, s.flushed, s.n-s.flushed)
		s.flushed = s.n
	}
	if !s.b.noSync && s.n-s.synced >= writebackChunk {
		// At most one background fdatasync at a time: while one runs, the
		// bytes written meanwhile wait for the next.
		if busy, err := s.syncBusy(); err != nil {
			return n, fmt.Errorf("fsstore: stage: sync: %w", noSpace(s.f.Name(), err))
		} else if !busy {
			s.startSync()
		}
	}
	return n, nil
}

// startSync starts a background fdatasync of what has been written.
func (s *staged) startSync() {
	y := &syncing{done: make(chan struct{})}
	s.sync, s.synced = y, s.n
	go func(f *os.File, datasync func(*os.File) error) {
		defer close(y.done)
		y.err = datasync(f)
	}(s.f, s.b.datasync)
}

// syncBusy reports whether the background fdatasync still runs, and the
// error of one that has ended.
func (s *staged) syncBusy() (bool, error) {
	if s.sync == nil {
		return false, nil
	}
	select {
	case <-s.sync.done:
		return false, s.sync.err
	default:
		return true, nil
	}
}

// waitSync waits for the background fdatasync, if any, and returns its
// error. The file must not be closed before it returns.
func (s *staged) waitSync() error {
	if s.sync == nil {
		return nil
	}
	<-s.sync.done
	return s.sync.err
}

// Commit implements cas.Staged: it publishes the bytes under key,
// create-only.
func (s *staged) Commit(ctx context.Context, key string) error {
	if s.done {
		return errFinished
	}
	defer s.Abort() // no-op after publish
	if err := checkKey(key); err != nil {
		return err
	}
	if cas.IsKey(key) {
		// The blob stored compressed is the same blob.
		if _, err := os.Lstat(filepath.Join(s.b.root, relPathEncoded(key, cas.EncodingZstd))); err == nil {
			return fmt.Errorf("fsstore: %q: %w (stored compressed)", key, cas.ErrExists)
		}
	}
	return s.publish(ctx, key, false)
}

// CommitReplace implements cas.StagedReplacer: it publishes the bytes
// under key by an atomic rename over what is stored there, as a Put
// without IfAbsent does; under a blob key the compressed form, if any, is
// removed. cas.Store uses it to repair a blob whose compressed form is
// corrupt.
func (s *staged) CommitReplace(ctx context.Context, key string) error {
	if s.done {
		return errFinished
	}
	defer s.Abort() // no-op after publish
	if err := checkKey(key); err != nil {
		return err
	}
	return s.publishForm(ctx, key, "", true)
}

// CommitEncoded implements cas.EncodedCommitter: it publishes the bytes,
// a blob stored in opts.Encoding (cas.EncodingZstd), as
// cas/<hex[:2]>/<hex>.zst: with opts.IfAbsent create-only (ErrExists when
// either form of the blob exists), without it by an atomic rename that
// also removes the plain form. The decoded size the file's seek table
// records must be opts.DecodedSize.
func (s *staged) CommitEncoded(ctx context.Context, key string, opts cas.PutOptions) error {
	if s.done {
		return errFinished
	}
	defer s.Abort() // no-op after publish
	if err := checkKey(key); err != nil {
		return err
	}
	switch {
	case opts.Encoding != cas.EncodingZstd:
		return fmt.Errorf("fsstore: commit %q: %w: encoding %q", key, cas.ErrUnsupported, opts.Encoding)
	case !cas.IsKey(key):
		return fmt.Errorf("fsstore: commit %q: %w: only blob keys are stored encoded", key, cas.ErrUnsupported)
	}
	if n, err := cas.DecodedSize(opts.Encoding, s.f, s.n); err != nil {
		return fmt.Errorf("fsstore: commit %q: %w", key, err)
	} else if n != opts.DecodedSize {
		return fmt.Errorf("fsstore: commit %q: %w: the seek table records %d decoded bytes, not %d", key, cas.ErrCorrupt, n, opts.DecodedSize)
	}
	if opts.IfAbsent {
		if _, err := os.Lstat(filepath.Join(s.b.root, relPath(key))); err == nil {
			return fmt.Errorf("fsstore: %q: %w (stored plain)", key, cas.ErrExists)
		}
	}
	return s.publishForm(ctx, key, opts.Encoding, !opts.IfAbsent)
}

// publishForm publishes the bytes as key's file in encoding enc (a blob
// key's form; "" for any other key): create-only, or with replace by an
// atomic rename that also removes a blob's other form.
//
// One form per blob: a create-only write that raced with one of the other
// form leaves both, which is harmless (Stat prefers the plain file, Delete
// removes both). A replacing write removes the other form's file only if
// it is still the one it saw before publishing (removeStale): two
// replacing writes of different forms at once (a compressing and a plain
// Store repairing one blob) must not remove each other's fresh files,
// which would leave neither.
func (s *staged) publishForm(ctx context.Context, key, enc string, replace bool) error {
	var (
		other string
		stale fs.FileInfo
	)
	if replace && cas.IsKey(key) {
		otherEnc := cas.EncodingZstd
		if enc != "" {
			otherEnc = ""
		}
		other = filepath.Join(s.b.root, relPathEncoded(key, otherEnc))
		stale, _ = os.Lstat(other) // nil when there is none
	}
	if err := s.publishAt(ctx, key, relPathEncoded(key, enc), replace); err != nil {
		return err
	}
	if stale == nil {
		return nil
	}
	if s.b.published != nil {
		s.b.published(key)
	}
	if err := s.b.removeStale(other, stale); err != nil {
		return fmt.Errorf("fsstore: put %q: remove the other form: %w", key, err)
	}
	return nil
}

// removeStale removes the file at path if it is still stale, the file
// seen there before: a concurrent writer may have published a fresh one
// meanwhile, which stays. A file that is no longer the stale one is left
// in place. One that still looks stale is first moved away by an atomic
// rename into the temporary directory, so that the file checked is the
// file removed; a fresh one that took its place between the look and the
// rename is linked back (unless yet another took its place). Only then
// does a fresh file pass through the temporary directory, where it is
// unlocked (another process's New sweeps it) and missing to readers.
func (b *Backend) removeStale(path string, stale fs.FileInfo) error {
	switch fi, err := os.Lstat(path); {
	case notFound(err):
		return nil // removed already
	case err == nil && !sameStale(fi, stale):
		return nil // a fresh file: it stays where it is
	}
	t, err := os.CreateTemp(b.tmp, "stale-*")
	if err != nil {
		return noSpace(b.tmp, err)
	}
	trash := t.Name()
	_ = t.Close()
	defer os.Remove(trash)
	if err := os.Rename(path, trash); err != nil {
		if notFound(err) {
			return nil // removed already
		}
		return err
	}
	fi, err := os.Lstat(trash)
	switch {
	case notFound(err):
		return nil // swept by another process's New: nothing to put back
	case err != nil:
		return err
	case sameStale(fi, stale):
		return nil
	}
	// A fresh file: put it back.
	if err := os.Link(trash, path); err != nil && !errors.Is(err, fs.ErrExist) && !notFound(err) {
		return err
	}
	return nil
}

// sameStale reports whether fi is the stale file seen before: the same
// file, not modified since.
func sameStale(fi, stale fs.FileInfo) bool {
	return os.SameFile(fi, stale) && fi.ModTime().Equal(stale.ModTime()) && fi.Size() == stale.Size()
}

// Abort implements cas.Staged: it removes the temporary file. It is a
// no-op once the Staged is finished.
func (s *staged) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	_ = s.waitSync() // the file is removed: its error does not matter
	var errC error
	if closeFirst && !s.closed {
		s.closed = true
		errC = s.f.Close()
	}
	// Elsewhere, remove before close: the lock is held until the file is
	// gone.
	errR := os.Remove(s.f.Name())
	if !s.closed {
		s.closed = true
		errC = s.f.Close()
	}
	if errR != nil && !errors.Is(errR, fs.ErrNotExist) {
		return fmt.Errorf("fsstore: abort: %w", errR)
	}
	if errC != nil {
		return fmt.Errorf("fsstore: abort: %w", errC)
	}
	return nil
}

// publish flushes the file and moves it to key, a valid key: with replace,
// by an atomic rename over any existing object; without, by a hard link
// that fails when key exists. The Staged is finished when publish returns
// nil; on error the caller aborts it.
func (s *staged) publish(ctx context.Context, key string, replace bool) error {
	return s.publishAt(ctx, key, relPath(key), replace)
}

// publishAt is publish to the path rel, relative to the root.
func (s *staged) publishAt(ctx context.Context, key, rel string, replace bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.done {
		return errFinished
	}
	tmp := s.f.Name()
	if !s.b.noSync {
		err := s.waitSync()
		if err == nil {
			err = s.b.datasync(s.f)
		}
		if err != nil {
			return fmt.Errorf("fsstore: put %q: sync: %w", key, noSpace(tmp, err))
		}
	}
	if closeFirst {
		s.closed = true
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("fsstore: put %q: %w", key, noSpace(tmp, err))
		}
	}
	// Elsewhere the file stays open, and locked, until it is published:
	// a sweep never takes it.
	final := filepath.Join(s.b.root, rel)
	dirs, err := s.b.mkdirs(filepath.Dir(rel))
	if err != nil {
		return fmt.Errorf("fsstore: put %q: %w", key, noSpace(filepath.Join(s.b.root, filepath.Dir(rel)), err))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
		// A directory left empty by deleted keys under it must not block
		// this key; os.Remove fails, harmlessly, unless it is empty.
		_ = os.Remove(final)
	}
	if replace {
		err = os.Rename(tmp, final)
	} else {
		err = os.Link(tmp, final)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) && !replace {
			if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
				return fmt.Errorf("fsstore: put %q: %w: a directory of other keys has this name", key, ErrInvalidKey)
			}
			return fmt.Errorf("fsstore: %q: %w", key, cas.ErrExists)
		}
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("fsstore: put %q: %w: collides with another key's file or directory: %v", key, ErrInvalidKey, err)
		}
		return fmt.Errorf("fsstore: put %q: %w", key, noSpace(final, err))
	}
	s.done = true
	if !replace {
		// The object is published; a leftover link in .tmp is harmless
		// and swept later.
		_ = os.Remove(tmp)
	}
	if !s.closed {
		// The data was synced (or sync is off): a close error cannot lose
		// any of it, and the object is published.
		s.closed = true
		_ = s.f.Close()
	}
	if !s.b.noSync {
		for _, d := range append(dirs, filepath.Dir(final)) {
			if err := syncDir(d); err != nil {
				return fmt.Errorf("fsstore: put %q: sync directory: %w", key, noSpace(d, err))
			}
		}
	}
	return nil
}

// mkdirs creates the directory rel under the root and any missing parents.
// It returns the directories whose entries changed and need an fsync.
func (b *Backend) mkdirs(rel string) ([]string, error) {
	dir := filepath.Join(b.root, rel)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil, nil
	}
	var changed []string
	p := b.root
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		parent := p
		p = filepath.Join(p, seg)
		err := os.Mkdir(p, 0o755)
		switch {
		case err == nil:
			changed = append(changed, parent)
		case errors.Is(err, fs.ErrExist):
			if fi, serr := os.Stat(p); serr != nil || !fi.IsDir() {
				return nil, fmt.Errorf("%w: %s is a file, not a directory of keys", ErrInvalidKey, filepath.ToSlash(strings.TrimPrefix(p, b.root+string(filepath.Separator))))
			}
		default:
			return nil, err
		}
	}
	return changed, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
