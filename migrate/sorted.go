package migrate

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
)

// ErrUnordered: a listing or key stream that must be in increasing byte
// order was not. Cleanup and Collect stop (deleting nothing more) when
// they meet it, since a merge of unordered streams cannot tell what is
// referenced.
var ErrUnordered = errors.New("migrate: keys out of byte order")

// SortedReferencer is an optional interface of a Migrator that can read
// the keys it references in byte order. Cleanup and Collect merge that
// stream with the Backend's key-ordered List, so that their memory does
// not grow with the number of records. Without it they sort Referenced's
// keys on disk first (see CleanupOptions.TempDir), which costs a pass and
// temporary files but the same bounded memory.
type SortedReferencer interface {
	// ReferencedSorted yields the keys Referenced yields that are not
	// less than from, in increasing byte order (the order of
	// strings.Compare, which a database gives with a binary collation:
	// COLLATE "C" on PostgreSQL, utf8mb4_bin or BINARY on MySQL, SQLite's
	// default). Duplicates are allowed. A caller may stop early.
	ReferencedSorted(ctx context.Context, from string) iter.Seq2[string, error]
}

// DefaultSortMemory is how many bytes of keys the on-disk sort keeps in
// memory at once (CleanupOptions.SortMemory and CollectOptions.SortMemory
// when zero): keys beyond it go to sorted temporary files that are merged
// back.
const DefaultSortMemory = 8 << 20

// keyOverhead approximates the memory of one held key besides its bytes
// (a string header in a slice).
const keyOverhead = 16

// sortKeys returns the keys of seq that keep accepts, in increasing byte
// order without duplicates, read to the end first: sorted in memory when
// they fit in memory bytes, otherwise in runs of that size spilled to
// temporary files in dir and merged. The returned stop closes and removes
// the files; call it when done.
func sortKeys(ctx context.Context, seq iter.Seq2[string, error], keep func(string) bool, dir string, memory int) (iter.Seq2[string, error], func(), error) {
	if memory <= 0 {
		memory = DefaultSortMemory
	}
	var (
		runs  []*os.File
		chunk []string
		size  int
	)
	stop := func() {
		for _, f := range runs {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
		runs = nil
	}
	flush := func() error {
		slices.Sort(chunk)
		chunk = slices.Compact(chunk)
		f, err := os.CreateTemp(dir, "casa-keys-*")
		if err != nil {
			return fmt.Errorf("migrate: sort keys: %w", err)
		}
		runs = append(runs, f)
		w := bufio.NewWriterSize(f, 64<<10)
		var n [binary.MaxVarintLen64]byte
		for _, k := range chunk {
			if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))]); err != nil {
				return fmt.Errorf("migrate: sort keys: %w", err)
			}
			if _, err := w.WriteString(k); err != nil {
				return fmt.Errorf("migrate: sort keys: %w", err)
			}
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("migrate: sort keys: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("migrate: sort keys: %w", err)
		}
		clear(chunk)
		chunk, size = chunk[:0], 0
		return nil
	}
	for k, err := range seq {
		if err != nil {
			stop()
			return nil, func() {}, err
		}
		if !keep(k) {
			continue
		}
		chunk = append(chunk, k)
		size += len(k) + keyOverhead
		if size >= memory {
			if err := flush(); err != nil {
				stop()
				return nil, func() {}, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		stop()
		return nil, func() {}, err
	}
	if len(runs) == 0 {
		// Everything fits in memory: no file at all.
		slices.Sort(chunk)
		chunk = slices.Compact(chunk)
		return func(yield func(string, error) bool) {
			for _, k := range chunk {
				if !yield(k, nil) {
					return
				}
			}
		}, func() {}, nil
	}
	if len(chunk) > 0 {
		if err := flush(); err != nil {
			stop()
			return nil, func() {}, err
		}
	}
	chunk = nil
	return mergeRuns(runs), stop, nil
}

// run is one sorted temporary file being merged.
type run struct {
	r   *bufio.Reader
	key string
}

func (r *run) next() (bool, error) {
	n, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("migrate: sort keys: read run: %w", err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return false, fmt.Errorf("migrate: sort keys: read run: %w", err)
	}
	r.key = string(b)
	return true, nil
}

// runHeap orders runs by their current key.
type runHeap []*run

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*run)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns merges sorted run files into one sorted stream without
// duplicates, holding one key and a small buffer per run.
func mergeRuns(files []*os.File) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		h := make(runHeap, 0, len(files))
		for _, f := range files {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				yield("", fmt.Errorf("migrate: sort keys: %w", err))
				return
			}
			r := &run{r: bufio.NewReaderSize(f, 16<<10)}
			ok, err := r.next()
			if err != nil {
				yield("", err)
				return
			}
			if ok {
				h = append(h, r)
			}
		}
		heap.Init(&h)
		last, started := "", false
		for h.Len() > 0 {
			r := h[0]
			if !started || r.key != last {
				if !yield(r.key, nil) {
					return
				}
				last, started = r.key, true
			}
			ok, err := r.next()
			if err != nil {
				yield("", err)
				return
			}
			if ok {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
		}
	}
}

// cursor walks a stream of keys that must be in increasing byte order, to
// answer "is key in the stream?" for increasing keys, holding one key.
type cursor struct {
	name string
	next func() (string, error, bool)
	stop func()
	cur  string
	ok   bool // cur is valid; false once the stream is exhausted
	err  error
}

func newCursor(name string, seq iter.Seq2[string, error]) *cursor {
	c := &cursor{name: name}
	c.next, c.stop = iter.Pull2(seq)
	c.advance()
	return c
}

func (c *cursor) advance() {
	if c.err != nil {
		c.ok = false
		return
	}
	k, err, ok := c.next()
	switch {
	case !ok:
		c.ok = false
	case err != nil:
		c.ok, c.err = false, err
	case c.ok && k < c.cur:
		c.ok, c.err = false, fmt.Errorf("%w: %s yielded %q after %q", ErrUnordered, c.name, k, c.cur)
	default:
		c.cur, c.ok = k, true
	}
}

// contains reports whether key is in the stream. Successive calls must
// ask for increasing keys.
func (c *cursor) contains(key string) (bool, error) {
	for c.ok && c.cur < key {
		c.advance()
	}
	if c.err != nil {
		return false, c.err
	}
	return c.ok && c.cur == key, nil
}

func (c *cursor) close() { c.stop() }

// referencedSorted returns the referenced keys that keep accepts, not
// less than from, in increasing byte order: m's own order when it is a
// SortedReferencer, an on-disk sort of Referenced otherwise. within
// reports whether a key of the Migrator's sorted stream can still be
// followed by accepted ones (false stops reading: past a prefix's range).
func referencedSorted(ctx context.Context, m Migrator, from string, keep func(string) bool, within func(string) bool, dir string, memory int) (iter.Seq2[string, error], func(), error) {
	if sr, ok := m.(SortedReferencer); ok {
		return func(yield func(string, error) bool) {
			for k, err := range sr.ReferencedSorted(ctx, from) {
				if err != nil {
					yield("", err)
					return
				}
				if !within(k) {
					return
				}
				if keep(k) && !yield(k, nil) {
					return
				}
			}
		}, func() {}, nil
	}
	return sortKeys(ctx, m.Referenced(ctx), func(k string) bool { return k >= from && keep(k) }, dir, memory)
}

// withinPrefix reports whether a key in sorted order may still be followed
// by keys with the prefix: it is not past the prefix's range.
func withinPrefix(prefix string) func(string) bool {
	return func(k string) bool { return strings.HasPrefix(k, prefix) || k < prefix }
}
