// Package fsstore is a cas.Backend that keeps objects as files in a local
// directory: the embedded default.
//
// Each object is a read-only file. The CAS key cas/<hex> is stored at
// cas/<hex[:2]>/<hex> under the root (256 shard directories); any other key
// is stored at its own slash-separated path. A write goes to a temporary
// file under the root's .tmp directory, is flushed to disk with fsync, and
// is published atomically: create-only writes use a hard link, which fails
// rather than replace an existing file, and other writes an atomic rename.
// A crash mid-write therefore never leaves a partial object under a key; at
// worst a temporary file, which the next New removes at once: a writer
// holds an flock(2) on its temporary file while it writes (on Linux), so a
// file nobody holds is a crashed write's, whatever its age, also when
// several processes share the directory. Where locks are missing (other
// systems, file systems without flock) New removes temporary files once
// they are older than the stale age.
//
// Writes that fail because the file system is full (ENOSPC) or a quota is
// exhausted (EDQUOT) return errors wrapping cas.ErrNoSpace, with the
// original error and the path; the temporary file is removed.
//
// Keys that cas.CheckKey refuses, which includes every key that could
// escape the root or collide with the store's own files ("..", absolute
// paths, backslashes, NUL, empty segments, the reserved .tmp/ and non-CAS
// keys under cas/), are rejected with an error wrapping cas.ErrInvalidKey.
//
// The Backend is thin: it checks no sizes, digests or contexts, which the
// checked layer (cas.Checked) owns; a cas.Store calls it through that layer.
package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/casa-go/casa/cas"
)

// DefaultStaleTempAge is how old a temporary file must be before New
// removes it as the leftover of a crashed write, where New cannot tell from
// its lock whether its writer is alive.
const DefaultStaleTempAge = 24 * time.Hour

// Backend is a cas.Backend over a local directory. It is safe for
// concurrent use, also by several processes sharing the directory.
type Backend struct {
	root     string // absolute
	tmp      string // root/.tmp
	noSync   bool
	staleAge time.Duration
	datasync func(*os.File) error // flushes a temporary file; tests inject faults
	// published, when set, is called by a replacing write of a blob
	// between publishing its form and removing the other: tests race a
	// concurrent write there.
	published func(key string)
}

var (
	_ cas.Backend          = (*Backend)(nil)
	_ cas.Stager           = (*Backend)(nil)
	_ cas.EncodedCommitter = (*staged)(nil)
)

// Option configures a Backend.
type Option func(*Backend)

// WithoutSync turns off fsync of files and directories. Writes stay atomic
// but may be lost, or published empty, after a power failure or kernel
// crash. It is meant for tests and scratch stores only.
func WithoutSync() Option { return func(b *Backend) { b.noSync = true } }

// WithStaleTempAge sets how old a temporary file must be for New to remove
// it when its lock cannot tell (see the package doc); an unlocked file is
// removed whatever its age. Zero turns the whole sweep off, for a directory
// shared with processes of a casa version that took no locks; negative
// panics, naming the option. The default is DefaultStaleTempAge.
func WithStaleTempAge(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("fsstore: WithStaleTempAge(%v): want 0 (no sweep) or a positive age", d))
	}
	return func(b *Backend) { b.staleAge = d }
}

// New returns a Backend storing objects under dir, creating dir when it
// does not exist, and removes the temporary files of crashed writes: every
// one no live process holds locked, and, where that cannot be told, those
// older than the stale age.
func New(dir string, opts ...Option) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("fsstore: empty directory name")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	b := &Backend{root: root, tmp: filepath.Join(root, tmpDir), staleAge: DefaultStaleTempAge, datasync: datasync}
	for _, o := range opts {
		o(b)
	}
	if err := os.MkdirAll(b.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	if b.staleAge > 0 {
		if err := b.sweep(time.Now().Add(-b.staleAge)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Dir returns the absolute path of the Backend's root directory.
func (b *Backend) Dir() string { return b.root }

// sweep removes the temporary files of crashed writes: those whose lock
// no live process holds, and those last modified before cutoff where the
// lock cannot tell.
func (b *Backend) sweep(cutoff time.Time) error {
	entries, err := os.ReadDir(b.tmp)
	if err != nil {
		return fmt.Errorf("fsstore: sweep: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(b.tmp, e.Name())
		known, err := removeIfDead(path)
		if err != nil {
			return fmt.Errorf("fsstore: sweep: %w", err)
		}
		if known {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fsstore: sweep: %w", err)
		}
	}
	return nil
}

// path validates key and returns its absolute file name.
func (b *Backend) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.root, relPath(key)), nil
}

// notFound reports whether err means that no object is at a path: missing,
// or a parent is a regular file.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Stat implements cas.Backend. An object stored as it is costs one
// Lstat(2), with the checks Open makes (a symlink or any other file that
// is not a regular file is no object: ErrNotFound, in Open's words): Stat
// is the dedup check of every Put and answers cashttp's HEAD. A blob
// stored compressed reports its decoded size, read from the seek table at
// the end of its file, which Stat opens as Open does.
func (b *Backend) Stat(ctx context.Context, key string) (cas.Info, error) {
	p, err := b.path(key)
	if err != nil {
		return cas.Info{}, err
	}
	fi, err := os.Lstat(p)
	if cas.IsKey(key) && notFound(err) {
		// Not stored as it is: the compressed form, if any.
		obj, err := b.open(key, p+zstdSuffix, cas.EncodingZstd)
		if err != nil {
			return cas.Info{}, err
		}
		info := obj.Info()
		_ = obj.Close()
		return info, nil
	}
	switch {
	case notFound(err) || errors.Is(err, syscall.ELOOP):
		return cas.Info{}, errNotFound(key)
	case err != nil:
		return cas.Info{}, fmt.Errorf("fsstore: stat %q: %w", key, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		// Open's O_NOFOLLOW fails on it with ELOOP.
		return cas.Info{}, errNotFound(key)
	case !fi.Mode().IsRegular():
		return cas.Info{}, errNotRegular(key)
	}
	return cas.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), StoredSize: fi.Size()}, nil
}

// errNotFound is Open's and Stat's error for a key that names no object:
// nothing, or a symlink.
func errNotFound(key string) error { return fmt.Errorf("fsstore: %q: %w", key, cas.ErrNotFound) }

// errNotRegular is Open's and Stat's error for a key that names a file
// that is not a regular file (a directory of other keys, a FIFO).
func errNotRegular(key string) error {
	return fmt.Errorf("fsstore: %q is not a regular file: %w", key, cas.ErrNotFound)
}

// find returns the path of the file of key and its encoding: a blob key's
// plain file, else its compressed one.
func (b *Backend) find(key string) (string, string, error) {
	p, err := b.path(key)
	if err != nil {
		return "", "", err
	}
	if !cas.IsKey(key) {
		return p, "", nil
	}
	if _, err := os.Lstat(p); notFound(err) {
		if _, err := os.Lstat(p + zstdSuffix); err == nil {
			return p + zstdSuffix, cas.EncodingZstd, nil
		}
	}
	return p, "", nil
}

// Object is an open object of a Backend: a read-only *os.File and the
// object's Info. It implements cas.FileObject, so a server can send the
// file with sendfile(2) (cashttp does), and io.Copy from an Object to a
// network connection uses the file's WriteTo, which does the same.
type Object struct {
	file *os.File
	info cas.Info
}

var (
	_ cas.FileObject = (*Object)(nil)
	_ io.ReaderAt    = (*Object)(nil)
	_ io.WriterTo    = (*Object)(nil)
)

// Info implements cas.Object.
func (o *Object) Info() cas.Info { return o.info }

// File implements cas.FileObject: the open file of the object, which the
// Object owns (Close closes it).
func (o *Object) File() *os.File { return o.file }

// Read implements io.Reader.
func (o *Object) Read(p []byte) (int, error) { return o.file.Read(p) }

// ReadAt implements io.ReaderAt.
func (o *Object) ReadAt(p []byte, off int64) (int, error) { return o.file.ReadAt(p, off) }

// Seek implements io.Seeker.
func (o *Object) Seek(off int64, whence int) (int64, error) { return o.file.Seek(off, whence) }

// WriteTo implements io.WriterTo with the file's WriteTo, which sends the
// file with sendfile(2) or splice(2) when w is a network connection.
func (o *Object) WriteTo(w io.Writer) (int64, error) { return o.file.WriteTo(w) }

// Close closes the file.
func (o *Object) Close() error { return o.file.Close() }

// Open implements cas.Backend. The returned cas.Object is an *Object.
func (b *Backend) Open(_ context.Context, key string) (cas.Object, error) {
	p, enc, err := b.find(key)
	if err != nil {
		return nil, err
	}
	return b.open(key, p, enc)
}

// open opens the file p of key, stored in encoding enc, as an Object.
func (b *Backend) open(key, p, enc string) (*Object, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|noFollow, 0)
	switch {
	case notFound(err) || errors.Is(err, syscall.ELOOP):
		return nil, errNotFound(key)
	case err != nil:
		return nil, fmt.Errorf("fsstore: open %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("fsstore: open %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, errNotRegular(key)
	}
	info, err := fileInfo(key, enc, f, fi)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("fsstore: open %q: %w", key, err)
	}
	return &Object{file: f, info: info}, nil
}

// fileInfo describes the file f (fi) of key, stored in encoding.
func fileInfo(key, encoding string, f io.ReaderAt, fi fs.FileInfo) (cas.Info, error) {
	info := cas.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Encoding: encoding, StoredSize: fi.Size()}
	if encoding != "" {
		n, err := cas.DecodedSize(encoding, f, fi.Size())
		if err != nil {
			return cas.Info{}, err
		}
		info.Size = n
	}
	return info, nil
}

// Put implements cas.Backend. It reads r into a temporary file, flushes
// the file to disk and publishes it under key: create-only with
// opts.IfAbsent, replacing an existing object atomically otherwise. When r
// fails, the temporary file is removed and key is untouched. Sizes,
// digests and contexts are the checked layer's (cas.Checked).
//
// A blob key with opts.Encoding cas.EncodingZstd is written to
// cas/<hex[:2]>/<hex>.zst; its decoded size is read back from the file's
// seek table. A create-only write fails when either form exists; a
// replacing one removes the other form.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, _ int64, opts cas.PutOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	switch {
	case opts.Encoding == "":
	case opts.Encoding != cas.EncodingZstd:
		return fmt.Errorf("fsstore: put %q: %w: encoding %q", key, cas.ErrUnsupported, opts.Encoding)
	case !cas.IsKey(key):
		return fmt.Errorf("fsstore: put %q: %w: only blob keys are stored encoded", key, cas.ErrUnsupported)
	}
	if opts.IfAbsent {
		// Fail early; the no-clobber link below settles races.
		if _, err := b.Stat(ctx, key); err == nil {
			return fmt.Errorf("fsstore: %q: %w", key, cas.ErrExists)
		}
	}
	st, err := b.stage()
	if err != nil {
		return err
	}
	defer st.Abort() // no-op after publish
	if _, err := io.CopyBuffer(st, r, make([]byte, copyBufferSize)); err != nil {
		return fmt.Errorf("fsstore: put %q: %w", key, err)
	}
	return st.publishForm(ctx, key, opts.Encoding, !opts.IfAbsent)
}

// copyBufferSize is the size of the buffer Put copies through.
const copyBufferSize = 256 << 10

// Delete implements cas.Backend.
func (b *Backend) Delete(_ context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	// A directory of other keys is no object: leave it alone.
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.Remove(p); err != nil && !notFound(err) {
		return fmt.Errorf("fsstore: delete %q: %w", key, err)
	}
	if cas.IsKey(key) {
		if err := os.Remove(p + zstdSuffix); err != nil && !notFound(err) {
			return fmt.Errorf("fsstore: delete %q: %w", key, err)
		}
	}
	return nil
}

// List implements cas.Backend. Keys come in lexical order. The listing is
// not a snapshot: objects written or deleted during iteration may or may
// not be yielded. Files that are not regular files are skipped.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(cas.Info{}, err)
			return
		}
		l := lister{ctx: ctx, prefix: prefix, yield: yield}
		l.walk(b.root, "", levelRoot)
	}
}

type level int

const (
	levelRoot  level = iota // the root directory
	levelPlain              // a directory of ordinary keys
	levelCAS                // root/cas: shard directories
	levelShard              // root/cas/xx: files named by hex
)

type lister struct {
	ctx    context.Context
	prefix string
	yield  func(cas.Info, error) bool
}

type entry struct {
	fs.DirEntry
	order    string // name, with "/" appended for directories
	key      string // the key, or the key prefix of a directory
	encoding string // a blob file's encoding
}

// walk yields the keys under dir, whose keys start with keyPrefix, in
// lexical order. It reports false when iteration must stop.
func (l *lister) walk(dir, keyPrefix string, lv level) bool {
	if err := l.ctx.Err(); err != nil {
		l.yield(cas.Info{}, err)
		return false
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if lv != levelRoot && notFound(err) {
			return true // removed while listing
		}
		l.yield(cas.Info{}, fmt.Errorf("fsstore: list: %w", err))
		return false
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		e := entry{DirEntry: de, order: name}
		switch {
		case lv == levelRoot && name == tmpDir:
			continue
		case lv == levelCAS:
			if !de.IsDir() || len(name) != 2 {
				continue
			}
			e.key = cas.KeyPrefix + name // a prefix of every key in the shard
		case lv == levelShard:
			hex, zst := strings.CutSuffix(name, zstdSuffix)
			if !de.Type().IsRegular() || !strings.HasPrefix(hex, dir[len(dir)-2:]) || !cas.IsKey(cas.KeyPrefix+hex) {
				continue
			}
			e.key = cas.KeyPrefix + hex
			if zst {
				e.encoding = cas.EncodingZstd
			}
		case de.IsDir():
			e.order = name + "/"
			e.key = keyPrefix + name + "/"
		case de.Type().IsRegular():
			e.key = keyPrefix + name
		default:
			continue
		}
		entries = append(entries, e)
	}
	// A key "a-b" sorts before the keys "a/...": compare directories as
	// if their names ended in a slash.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.order, b.order) })

	for i, e := range entries {
		if i > 0 && e.encoding != "" && entries[i-1].key == e.key {
			continue // both forms of a blob: the plain one was listed
		}
		full := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if !strings.HasPrefix(e.key, l.prefix) && !strings.HasPrefix(l.prefix, e.key) {
				continue
			}
			next := levelPlain
			switch {
			case lv == levelRoot && e.Name() == casDir:
				next = levelCAS
			case lv == levelCAS:
				next = levelShard
			}
			if !l.walk(full, e.key, next) {
				return false
			}
			continue
		}
		if !strings.HasPrefix(e.key, l.prefix) {
			continue
		}
		fi, err := e.Info()
		if notFound(err) {
			continue // deleted while listing
		}
		if err != nil {
			l.yield(cas.Info{}, fmt.Errorf("fsstore: list: %w", err))
			return false
		}
		info := cas.Info{Key: e.key, Size: fi.Size(), ModTime: fi.ModTime(), StoredSize: fi.Size()}
		if e.encoding != "" {
			info, err = listEncoded(full, e, fi)
			if notFound(err) {
				continue
			}
			if err != nil {
				l.yield(cas.Info{}, fmt.Errorf("fsstore: list: %w", err))
				return false
			}
		}
		if !l.yield(info, nil) {
			return false
		}
	}
	return true
}

// listEncoded describes the encoded blob file at path for List. A file
// whose seek table is unreadable is listed with Size -1: Open and Stat
// fail on it with an error wrapping cas.ErrCorrupt, and Store.Verify
// reports it.
func listEncoded(path string, e entry, fi fs.FileInfo) (cas.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return cas.Info{}, err
	}
	defer f.Close()
	info, err := fileInfo(e.key, e.encoding, f, fi)
	if errors.Is(err, cas.ErrCorrupt) {
		return cas.Info{Key: e.key, Size: -1, ModTime: fi.ModTime(), Encoding: e.encoding, StoredSize: fi.Size()}, nil
	}
	return info, err
}
