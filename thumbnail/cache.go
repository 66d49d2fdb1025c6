package thumbnail

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/casa-go/casa/cas"
)

// Cache stores generated thumbnails under string keys such as
// "thumbnails/<hex>_<N>.jpg". Implementations are safe for concurrent use.
type Cache interface {
	// Get returns the bytes stored under key, with ok false when there
	// are none.
	Get(ctx context.Context, key string) (b []byte, ok bool, err error)
	// Put stores b under key.
	Put(ctx context.Context, key string, b []byte) error
}

// maxCachedBytes bounds what a cache reads back for one key: a thumbnail
// is far smaller; anything larger is not one of ours.
const maxCachedBytes = 32 << 20

// validKey reports whether key is a relative slash-separated path of
// [A-Za-z0-9._-] segments, none empty, "." or "..", and none starting
// with the temporary-file prefix.
func validKey(key string) bool {
	if key == "" || len(key) > 512 {
		return false
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, tmpPrefix) {
			return false
		}
		for _, c := range seg {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

const tmpPrefix = ".tmp-"

// DirCache is a Cache in a local directory. Writes are atomic (a
// temporary file renamed into place) and the total size is bounded: when
// a Put takes it over the bound, the least recently used entries (the
// oldest, after a restart) are deleted first. It is safe for concurrent
// use by one process.
type DirCache struct {
	dir      string
	maxBytes int64

	mu      sync.Mutex
	lru     *list.List // of *dirEntry, least recently used first
	entries map[string]*list.Element
	total   int64
}

type dirEntry struct {
	key  string
	size int64
}

// NewDirCache opens (creating it if needed) a DirCache in dir holding at
// most maxBytes bytes of thumbnails; zero means no bound, and a negative
// maxBytes is an error. Existing entries are indexed oldest first and
// leftover temporary files from an interrupted write are removed.
func NewDirCache(dir string, maxBytes int64) (*DirCache, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("thumbnail: NewDirCache(%q, %d): want 0 (no bound) or a positive number of bytes", dir, maxBytes)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	c := &DirCache{dir: dir, maxBytes: maxBytes, lru: list.New(), entries: make(map[string]*list.Element)}
	type found struct {
		dirEntry
		mod time.Time
	}
	var all []found
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			_ = os.Remove(path)
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !validKey(key) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		all = append(all, found{dirEntry{key, info.Size()}, info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	slices.SortStableFunc(all, func(a, b found) int { return a.mod.Compare(b.mod) })
	for _, f := range all {
		c.entries[f.key] = c.lru.PushBack(&dirEntry{f.key, f.size})
		c.total += f.size
	}
	c.mu.Lock()
	c.evictLocked(nil)
	c.mu.Unlock()
	return c, nil
}

func (c *DirCache) path(key string) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("thumbnail: dir cache: invalid key %q", key)
	}
	return filepath.Join(c.dir, filepath.FromSlash(key)), nil
}

// Get implements Cache.
func (c *DirCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	p, err := c.path(key)
	if err != nil {
		return nil, false, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		c.mu.Lock()
		if e, ok := c.entries[key]; ok {
			// A Put may have published the file since the Open: drop the
			// entry only if the file is still missing (Put publishes
			// and indexes under c.mu).
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				c.removeLocked(e)
			}
		}
		c.mu.Unlock()
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCachedBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	if len(b) > maxCachedBytes {
		return nil, false, fmt.Errorf("thumbnail: dir cache: %q is over %d bytes", key, maxCachedBytes)
	}
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToBack(e)
	}
	c.mu.Unlock()
	return b, true, nil
}

// Put implements Cache. An entry larger than the whole bound is not
// stored. A failed Put leaves no file behind.
func (c *DirCache) Put(ctx context.Context, key string, b []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := c.path(key)
	if err != nil {
		return err
	}
	if c.maxBytes > 0 && int64(len(b)) > c.maxBytes {
		return nil
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	// Publish and index under one lock, so that concurrent Puts of a key
	// and evictions leave the index matching the directory.
	c.mu.Lock()
	defer c.mu.Unlock()
	if err = os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("thumbnail: dir cache: %w", err)
	}
	if e, ok := c.entries[key]; ok {
		c.total -= e.Value.(*dirEntry).size
		c.lru.Remove(e)
	}
	e := c.lru.PushBack(&dirEntry{key, int64(len(b))})
	c.entries[key] = e
	c.total += int64(len(b))
	c.evictLocked(e)
	return nil
}

// evictLocked deletes least recently used entries, never keep, until the
// total is within the bound.
func (c *DirCache) evictLocked(keep *list.Element) {
	for c.maxBytes > 0 && c.total > c.maxBytes {
		e := c.lru.Front()
		if e == nil || e == keep {
			return
		}
		if p, err := c.path(e.Value.(*dirEntry).key); err == nil {
			_ = os.Remove(p)
		}
		c.removeLocked(e)
	}
}

func (c *DirCache) removeLocked(e *list.Element) {
	d := e.Value.(*dirEntry)
	c.total -= d.size
	delete(c.entries, d.key)
	c.lru.Remove(e)
}

// Size returns the number of bytes the cache currently holds.
func (c *DirCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// BackendCache is a Cache in a cas.Backend, typically the one that holds
// the blobs: keys such as "thumbnails/<hex>_<N>.jpg" live beside the
// "cas/" keys, and Store.Walk and migrate.Cleanup leave them alone.
type BackendCache struct {
	b cas.Backend
}

// NewBackendCache returns a Cache that stores thumbnails in b, through
// cas.Checked: keys, sizes and contexts are checked there.
func NewBackendCache(b cas.Backend) *BackendCache { return &BackendCache{b: cas.Checked(b)} }

// Get implements Cache.
func (c *BackendCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	obj, err := c.b.Open(ctx, key)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("thumbnail: backend cache: %w", err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, maxCachedBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("thumbnail: backend cache: %w", err)
	}
	if len(b) > maxCachedBytes {
		return nil, false, fmt.Errorf("thumbnail: backend cache: %q is over %d bytes", key, maxCachedBytes)
	}
	return b, true, nil
}

// Put implements Cache. It writes create-only; finding the key already
// written (by a concurrent generation) is not an error. The bytes are in
// memory and the key is not their hash, so no SHA-256 is computed: the
// checked layer checks their size (and s3store's signed request protects
// them in transit).
func (c *BackendCache) Put(ctx context.Context, key string, b []byte) error {
	err := c.b.Put(ctx, key, bytes.NewReader(b), int64(len(b)), cas.PutOptions{
		IfAbsent:    true,
		ContentType: "image/jpeg",
	})
	if err != nil && !errors.Is(err, cas.ErrExists) {
		return fmt.Errorf("thumbnail: backend cache: %w", err)
	}
	return nil
}
