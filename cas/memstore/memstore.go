// Package memstore is an in-memory cas.Backend for tests and examples.
//
// It is also the model of a thin Backend: it stores what it reads, and
// leaves keys, sizes, digests and contexts to the checked layer in cas
// (cas.Checked), through which the Store calls it.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/casa-go/casa/cas"
)

// maxPrealloc bounds the buffer Put allocates up front from the declared size.
const maxPrealloc = 64 << 20

// Backend keeps objects in a map. It is safe for concurrent use.
type Backend struct {
	mu      sync.RWMutex
	objects map[string]object
}

type object struct {
	data     []byte
	modTime  time.Time
	encoding string // PutOptions.Encoding
	decoded  int64  // PutOptions.DecodedSize, when encoded
}

// info describes o, stored under key.
func (o object) info(key string) cas.Info {
	info := cas.Info{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, Encoding: o.encoding, StoredSize: int64(len(o.data))}
	if o.encoding != "" {
		info.Size = o.decoded
	}
	return info
}

var _ cas.Backend = (*Backend)(nil)

// New returns an empty Backend.
func New() *Backend { return &Backend{objects: make(map[string]object)} }

// Stat implements cas.Backend.
func (b *Backend) Stat(_ context.Context, key string) (cas.Info, error) {
	b.mu.RLock()
	o, ok := b.objects[key]
	b.mu.RUnlock()
	if !ok {
		return cas.Info{}, fmt.Errorf("memstore: %q: %w", key, cas.ErrNotFound)
	}
	return o.info(key), nil
}

// Open implements cas.Backend.
func (b *Backend) Open(_ context.Context, key string) (cas.Object, error) {
	b.mu.RLock()
	o, ok := b.objects[key]
	b.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("memstore: %q: %w", key, cas.ErrNotFound)
	}
	return &reader{Reader: bytes.NewReader(o.data), info: o.info(key)}, nil
}

// Put implements cas.Backend. The bytes are read before the map is locked,
// so a failed read stores nothing. opts.Encoding and opts.DecodedSize are
// kept beside the bytes and reported by Stat, Open and List.
func (b *Backend) Put(_ context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	var buf bytes.Buffer
	// Preallocate only a sane amount: the size is a claim.
	buf.Grow(int(min(max(size, 0), maxPrealloc)))
	if _, err := buf.ReadFrom(r); err != nil {
		return fmt.Errorf("memstore: put %q: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok && opts.IfAbsent {
		return fmt.Errorf("memstore: %q: %w", key, cas.ErrExists)
	}
	b.objects[key] = object{data: buf.Bytes(), modTime: time.Now(), encoding: opts.Encoding, decoded: opts.DecodedSize}
	return nil
}

// Delete implements cas.Backend.
func (b *Backend) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	delete(b.objects, key)
	b.mu.Unlock()
	return nil
}

// List implements cas.Backend. Keys come in lexical order, from a snapshot
// taken when iteration starts.
func (b *Backend) List(_ context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		b.mu.RLock()
		infos := make([]cas.Info, 0, len(b.objects))
		for k, o := range b.objects {
			if strings.HasPrefix(k, prefix) {
				infos = append(infos, o.info(k))
			}
		}
		b.mu.RUnlock()
		slices.SortFunc(infos, func(a, b cas.Info) int { return strings.Compare(a.Key, b.Key) })
		for _, info := range infos {
			if !yield(info, nil) {
				return
			}
		}
	}
}

// SetModTime changes the recorded modification time of key, for tests of
// age-based logic such as a cleanup grace period. It reports whether key exists.
func (b *Backend) SetModTime(key string, t time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if ok {
		o.modTime = t
		b.objects[key] = o
	}
	return ok
}

type reader struct {
	*bytes.Reader
	info cas.Info
}

func (r *reader) Close() error   { return nil }
func (r *reader) Info() cas.Info { return r.info }
