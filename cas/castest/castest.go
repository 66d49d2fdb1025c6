// Package castest is the conformance suite every cas.Backend runs.
//
// A Backend's test calls Run with a constructor for empty Backends:
//
//	func TestConformance(t *testing.T) {
//		castest.Run(t, func(t *testing.T) cas.Backend { return memstore.New() })
//	}
//
// Run checks the semantics the rest of casa relies on: ErrNotFound and
// ErrExists mapping, create-only writes, digest verification, failed writes
// that leave nothing behind, ranged reads through Seek, ordered and
// prefix-filtered listing across pages, non-CAS keys, concurrent use, and a
// cas.Store round trip over the Backend. When the Backend implements
// cas.Stager the Stage/Commit/Abort contract is checked too.
package castest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

// Run runs the conformance suite against Backends made by newBackend, which
// must return a new, empty Backend each time it is called (one per
// subtest). Subtests run in parallel, so newBackend must be safe to call
// from several goroutines; it may register cleanups with t.Cleanup.
func Run(t *testing.T, newBackend func(t *testing.T) cas.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b cas.Backend)
	}{
		{"Missing", testMissing},
		{"RoundTrip", testRoundTrip},
		{"Empty", testEmpty},
		{"Delete", testDelete},
		{"IfAbsent", testIfAbsent},
		{"Replace", testReplace},
		{"DigestMismatch", testDigestMismatch},
		{"FailingReader", testFailingReader},
		{"SizeMismatch", testSizeMismatch},
		{"CancelledPut", testCancelledPut},
		{"CancelledContext", testCancelledContext},
		{"Seek", testSeek},
		{"List", testList},
		{"ListBreak", testListBreak},
		{"ListMany", testListMany},
		{"NonCASKeys", testNonCASKeys},
		{"Concurrent", testConcurrent},
		{"ConcurrentIfAbsent", testConcurrentIfAbsent},
		{"Store", testStore},
		{"Stager", testStager},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t)
			require.NotNil(t, b, "newBackend returned nil")
			tc.fn(t, b)
		})
	}
}

// data returns n deterministic pseudo-random bytes for seed.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, b cas.Backend, key string, p []byte, opts cas.PutOptions) {
	t.Helper()
	require.NoError(t, b.Put(t.Context(), key, bytes.NewReader(p), int64(len(p)), opts), "Put %q", key)
}

// readKey opens key and returns its bytes, checking Info against them.
func readKey(t *testing.T, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(t.Context(), key)
	require.NoError(t, err, "Open %q", key)
	defer func() { require.NoError(t, obj.Close()) }()
	got, err := io.ReadAll(obj)
	require.NoError(t, err, "read %q", key)
	require.Equal(t, key, obj.Info().Key)
	require.Equal(t, int64(len(got)), obj.Info().Size, "Info().Size of %q", key)
	return got
}

func requireNotFound(t *testing.T, b cas.Backend, key string) {
	t.Helper()
	_, err := b.Stat(t.Context(), key)
	require.ErrorIs(t, err, cas.ErrNotFound, "Stat %q", key)
	obj, err := b.Open(t.Context(), key)
	if err == nil {
		_ = obj.Close()
	}
	require.ErrorIs(t, err, cas.ErrNotFound, "Open %q", key)
}

func listKeys(t *testing.T, b cas.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	for info, err := range b.List(t.Context(), prefix) {
		require.NoError(t, err, "List %q", prefix)
		keys = append(keys, info.Key)
	}
	return keys
}

func testMissing(t *testing.T, b cas.Backend) {
	for _, key := range []string{
		cas.SumBytes([]byte("missing")).Key(),
		"legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69",
		"thumbnails/missing_150.jpg",
	} {
		requireNotFound(t, b, key)
	}
	require.Empty(t, listKeys(t, b, ""), "a new Backend lists nothing")
}

func testRoundTrip(t *testing.T, b cas.Backend) {
	p := data(1, 10_000)
	h := cas.SumBytes(p)
	before := time.Now()
	put(t, b, h.Key(), p, cas.PutOptions{SHA256: h, IfAbsent: true, ContentType: "application/octet-stream"})
	after := time.Now()

	info, err := b.Stat(t.Context(), h.Key())
	require.NoError(t, err)
	require.Equal(t, h.Key(), info.Key)
	require.Equal(t, int64(len(p)), info.Size)
	// Allow for clocks and timestamps of one-second resolution.
	require.False(t, info.ModTime.IsZero(), "ModTime is zero")
	require.WithinRange(t, info.ModTime, before.Add(-5*time.Second), after.Add(5*time.Second), "ModTime")

	obj, err := b.Open(t.Context(), h.Key())
	require.NoError(t, err)
	defer obj.Close()
	oi := obj.Info()
	require.Equal(t, info.Key, oi.Key)
	require.Equal(t, info.Size, oi.Size)
	require.WithinDuration(t, info.ModTime, oi.ModTime, time.Second, "Open and Stat agree on ModTime")
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.True(t, bytes.Equal(p, got), "bytes read back differ from bytes written")
}

func testEmpty(t *testing.T, b cas.Backend) {
	h := cas.SumBytes(nil)
	put(t, b, h.Key(), nil, cas.PutOptions{SHA256: h, IfAbsent: true})
	info, err := b.Stat(t.Context(), h.Key())
	require.NoError(t, err)
	require.Equal(t, int64(0), info.Size)
	obj, err := b.Open(t.Context(), h.Key())
	require.NoError(t, err)
	defer obj.Close()
	n, err := obj.Read(make([]byte, 8))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
}

func testDelete(t *testing.T, b cas.Backend) {
	ctx := t.Context()
	require.NoError(t, b.Delete(ctx, "legacy/never-stored"), "Delete of a missing key is nil")
	p := []byte("delete me")
	put(t, b, "legacy/del", p, cas.PutOptions{})
	put(t, b, "legacy/keep", p, cas.PutOptions{})
	require.NoError(t, b.Delete(ctx, "legacy/del"))
	requireNotFound(t, b, "legacy/del")
	require.NoError(t, b.Delete(ctx, "legacy/del"), "second Delete is nil")
	require.Equal(t, []string{"legacy/keep"}, listKeys(t, b, ""))
	require.Equal(t, p, readKey(t, b, "legacy/keep"))
	// A deleted key can be written again, create-only.
	put(t, b, "legacy/del", []byte("again"), cas.PutOptions{IfAbsent: true})
	require.Equal(t, []byte("again"), readKey(t, b, "legacy/del"))
}

func testIfAbsent(t *testing.T, b cas.Backend) {
	orig := data(2, 3000)
	h := cas.SumBytes(orig)
	put(t, b, h.Key(), orig, cas.PutOptions{SHA256: h, IfAbsent: true})
	for _, key := range []string{h.Key(), "legacy/ifabsent"} {
		if key != h.Key() {
			put(t, b, key, orig, cas.PutOptions{IfAbsent: true})
		}
		other := data(3, 500)
		err := b.Put(t.Context(), key, bytes.NewReader(other), int64(len(other)), cas.PutOptions{IfAbsent: true})
		require.ErrorIs(t, err, cas.ErrExists, "IfAbsent Put over %q", key)
		require.True(t, bytes.Equal(orig, readKey(t, b, key)), "original bytes of %q changed", key)
		info, err := b.Stat(t.Context(), key)
		require.NoError(t, err)
		require.Equal(t, int64(len(orig)), info.Size)
	}
}

func testReplace(t *testing.T, b cas.Backend) {
	put(t, b, "legacy/replace", []byte("first version"), cas.PutOptions{})
	put(t, b, "legacy/replace", []byte("second"), cas.PutOptions{})
	require.Equal(t, []byte("second"), readKey(t, b, "legacy/replace"), "Put without IfAbsent replaces")
	require.Equal(t, []string{"legacy/replace"}, listKeys(t, b, "legacy/"))
}

func testDigestMismatch(t *testing.T, b cas.Backend) {
	p := data(4, 2048)
	wrong := cas.SumBytes([]byte("something else"))
	for _, opts := range []cas.PutOptions{{SHA256: wrong}, {SHA256: wrong, IfAbsent: true}} {
		for _, key := range []string{wrong.Key(), cas.SumBytes(p).Key(), "legacy/digest"} {
			err := b.Put(t.Context(), key, bytes.NewReader(p), int64(len(p)), opts)
			require.ErrorIs(t, err, cas.ErrDigestMismatch, "Put %q with a wrong SHA256 (IfAbsent %v)", key, opts.IfAbsent)
			requireNotFound(t, b, key)
		}
	}
	require.Empty(t, listKeys(t, b, ""))

	// A mismatch does not disturb an existing object either.
	put(t, b, "legacy/digest", p, cas.PutOptions{})
	other := data(5, 100)
	err := b.Put(t.Context(), "legacy/digest", bytes.NewReader(other), int64(len(other)), cas.PutOptions{SHA256: wrong})
	require.ErrorIs(t, err, cas.ErrDigestMismatch)
	require.True(t, bytes.Equal(p, readKey(t, b, "legacy/digest")))
}

// failingReader yields n bytes of good data and then fails.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errInjected = errors.New("castest: injected read failure")

func testFailingReader(t *testing.T, b cas.Backend) {
	p := data(6, 64<<10)
	for _, opts := range []cas.PutOptions{{}, {IfAbsent: true}} {
		r := &failingReader{r: bytes.NewReader(p[:20<<10]), err: errInjected}
		err := b.Put(t.Context(), "legacy/fail", r, int64(len(p)), opts)
		require.Error(t, err, "Put from a reader that fails midway")
		requireNotFound(t, b, "legacy/fail")
	}
	require.Empty(t, listKeys(t, b, ""))

	// A failed replacement leaves the existing object intact.
	put(t, b, "legacy/fail", []byte("intact"), cas.PutOptions{})
	r := &failingReader{r: bytes.NewReader(p[:1000]), err: errInjected}
	require.Error(t, b.Put(t.Context(), "legacy/fail", r, int64(len(p)), cas.PutOptions{}))
	require.Equal(t, []byte("intact"), readKey(t, b, "legacy/fail"))
}

func testSizeMismatch(t *testing.T, b cas.Backend) {
	p := data(7, 4096)
	for _, size := range []int64{int64(len(p)) + 1, int64(len(p)) + 10_000, int64(len(p)) - 1, 0} {
		err := b.Put(t.Context(), "legacy/size", bytes.NewReader(p), size, cas.PutOptions{})
		require.Error(t, err, "Put of %d bytes declared as %d", len(p), size)
		requireNotFound(t, b, "legacy/size")
	}
	require.Empty(t, listKeys(t, b, ""))
}

func testCancelledPut(t *testing.T, b cas.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := data(8, 1000)
	h := cas.SumBytes(p)
	err := b.Put(ctx, h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: h, IfAbsent: true})
	require.Error(t, err, "Put with a cancelled context")
	requireNotFound(t, b, h.Key())

	// Cancelled while the body is being read.
	ctx, cancel = context.WithCancel(t.Context())
	r := &cancelReader{r: bytes.NewReader(data(9, 256<<10)), after: 64 << 10, cancel: cancel}
	err = b.Put(ctx, "legacy/cancel", r, 256<<10, cas.PutOptions{})
	require.Error(t, err, "Put cancelled midway")
	requireNotFound(t, b, "legacy/cancel")
	require.Empty(t, listKeys(t, b, ""))
}

func testCancelledContext(t *testing.T, b cas.Backend) {
	put(t, b, "legacy/ctx", []byte("ctx"), cas.PutOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.Stat(ctx, "legacy/ctx")
	require.ErrorIs(t, err, context.Canceled, "Stat")
	obj, err := b.Open(ctx, "legacy/ctx")
	if err == nil {
		_ = obj.Close()
	}
	require.ErrorIs(t, err, context.Canceled, "Open")
	require.ErrorIs(t, b.Delete(ctx, "legacy/ctx"), context.Canceled, "Delete")
	n := 0
	for _, err := range b.List(ctx, "") {
		n++
		require.ErrorIs(t, err, context.Canceled, "List")
	}
	require.Equal(t, 1, n, "List yields one error")
	require.Equal(t, []byte("ctx"), readKey(t, b, "legacy/ctx"), "a cancelled Delete deletes nothing")
}

// cancelReader cancels its context once after bytes have been read.
type cancelReader struct {
	r      io.Reader
	n      int
	after  int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func testSeek(t *testing.T, b cas.Backend) {
	const size = 100_000
	p := data(10, size)
	put(t, b, "legacy/seek", p, cas.PutOptions{})
	obj, err := b.Open(t.Context(), "legacy/seek")
	require.NoError(t, err)
	defer obj.Close()
	require.Equal(t, int64(size), obj.Info().Size)

	readAt := func(off int64, n int) {
		t.Helper()
		buf := make([]byte, n)
		_, err := io.ReadFull(obj, buf)
		require.NoError(t, err, "read %d bytes at %d", n, off)
		require.True(t, bytes.Equal(p[off:off+int64(n)], buf), "bytes at %d..%d differ", off, off+int64(n))
	}
	for _, off := range []int64{0, 1, 4095, 4096, 50_000, size - 100} {
		pos, err := obj.Seek(off, io.SeekStart)
		require.NoError(t, err)
		require.Equal(t, off, pos, "Seek(%d, SeekStart)", off)
		readAt(off, 100)
	}

	pos, err := obj.Seek(1000, io.SeekStart)
	require.NoError(t, err)
	require.Equal(t, int64(1000), pos)
	readAt(1000, 10)
	pos, err = obj.Seek(500, io.SeekCurrent)
	require.NoError(t, err)
	require.Equal(t, int64(1510), pos, "Seek(500, SeekCurrent) after reading to 1010")
	readAt(1510, 20)
	pos, err = obj.Seek(-30, io.SeekCurrent)
	require.NoError(t, err)
	require.Equal(t, int64(1500), pos)
	readAt(1500, 30)
	pos, err = obj.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	require.Equal(t, int64(1530), pos, "Seek(0, SeekCurrent) reports the position")

	pos, err = obj.Seek(-10, io.SeekEnd)
	require.NoError(t, err)
	require.Equal(t, int64(size-10), pos)
	rest, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, p[size-10:], rest, "tail after Seek(-10, SeekEnd)")
	n, err := obj.Read(make([]byte, 10))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF, "Read at the end")

	pos, err = obj.Seek(0, io.SeekEnd)
	require.NoError(t, err)
	require.Equal(t, int64(size), pos)
	n, err = obj.Read(make([]byte, 10))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF, "Read after Seek(0, SeekEnd)")

	pos, err = obj.Seek(size+1000, io.SeekStart)
	require.NoError(t, err, "Seek past the end is allowed, as with io.Seeker")
	require.Equal(t, int64(size+1000), pos)
	n, err = obj.Read(make([]byte, 10))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF, "Read past the end")

	_, err = obj.Seek(-1, io.SeekStart)
	require.Error(t, err, "Seek to a negative offset")

	// Back to the start: the whole object reads again.
	pos, err = obj.Seek(0, io.SeekStart)
	require.NoError(t, err)
	require.Equal(t, int64(0), pos)
	all, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.True(t, bytes.Equal(p, all), "whole object after seeking back")
}

func testList(t *testing.T, b cas.Backend) {
	h1 := cas.SumBytes([]byte("one"))
	h2 := cas.SumBytes([]byte("two"))
	h3 := cas.SumBytes([]byte("three"))
	contents := map[string][]byte{
		h1.Key():                                 []byte("one"),
		h2.Key():                                 []byte("two"),
		h3.Key():                                 []byte("three"),
		"legacy/a":                               []byte("a"),
		"legacy/b/c":                             []byte("bc"),
		"legacy/b-":                              []byte("b-"),
		"legacy/b":                               nil,
		"legacy-x":                               []byte("dash sorts before slash"),
		"legacy.y":                               []byte("dot sorts before slash"),
		"legacy/z/deep/er/key.bin":               []byte("deep"),
		"thumbnails/" + h1.String() + "_150.jpg": []byte("jpeg"),
		"a":                                      []byte("top-level"),
	}
	// "legacy/b" as a file and "legacy/b/c" as a directory entry collide on
	// a file system; keep the suite portable to such Backends.
	delete(contents, "legacy/b")
	var all []string
	for k, v := range contents {
		put(t, b, k, v, cas.PutOptions{})
		all = append(all, k)
	}
	slices.Sort(all)

	for _, prefix := range []string{
		"", "a", "cas/", "cas", "cas/" + h1.String()[:1], h2.Key(), h2.Key() + "x",
		"legacy", "legacy/", "legacy/b", "legacy/b/", "legacy/b-", "legacy/z/d",
		"legacy-", "thumbnails/", "thumbnails/" + h1.String(), "nomatch", "nomatch/", "legacy/q",
	} {
		var want []string
		for _, k := range all {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		var got []string
		for info, err := range b.List(t.Context(), prefix) {
			require.NoError(t, err, "List %q", prefix)
			got = append(got, info.Key)
			require.Equal(t, int64(len(contents[info.Key])), info.Size, "List %q: Size of %q", prefix, info.Key)
			require.False(t, info.ModTime.IsZero(), "List %q: ModTime of %q", prefix, info.Key)
		}
		require.Equal(t, want, got, "List %q: the keys with the prefix, in lexical order", prefix)
	}
}

func testListBreak(t *testing.T, b cas.Backend) {
	for i := range 5 {
		put(t, b, fmt.Sprintf("brk/%d", i), []byte{byte(i)}, cas.PutOptions{})
	}
	var got []string
	for info, err := range b.List(t.Context(), "brk/") {
		require.NoError(t, err)
		got = append(got, info.Key)
		if len(got) == 2 {
			break
		}
	}
	require.Equal(t, []string{"brk/0", "brk/1"}, got, "iteration stops at break")
	require.Len(t, listKeys(t, b, "brk/"), 5, "a new List after a break")
}

func testListMany(t *testing.T, b cas.Backend) {
	const n = 1100 // more than one S3 ListObjectsV2 page
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%05d", i)
	}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first = make(chan error, 1)
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				err := b.Put(t.Context(), keys[i], strings.NewReader("x"), 1, cas.PutOptions{})
				if err != nil {
					select {
					case first <- fmt.Errorf("Put %q: %w", keys[i], err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(first)
	require.NoError(t, <-first)
	put(t, b, "manz", []byte("after"), cas.PutOptions{})
	put(t, b, "man", []byte("before"), cas.PutOptions{})

	require.Equal(t, keys, listKeys(t, b, "many/"), "all keys, in order, across pages")
	all := listKeys(t, b, "")
	require.Len(t, all, n+2)
	require.Equal(t, "man", all[0])
	require.Equal(t, "manz", all[n+1])

	// Break after the first page.
	count := 0
	for _, err := range b.List(t.Context(), "many/") {
		require.NoError(t, err)
		count++
		if count == 1050 {
			break
		}
	}
	require.Equal(t, 1050, count)
}

func testNonCASKeys(t *testing.T, b cas.Backend) {
	h := cas.SumBytes([]byte("photo"))
	keys := []string{
		"legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69",
		"legacy/2024/05/report.pdf",
		"thumbnails/" + h.String() + "_150.jpg",
		"thumbnails/" + h.String() + "_1000.jpg",
		"uploads/with space & ünïcode.txt",
	}
	for i, k := range keys {
		put(t, b, k, data(uint64(100+i), 100+i), cas.PutOptions{ContentType: "application/octet-stream"})
	}
	for i, k := range keys {
		require.Equal(t, data(uint64(100+i), 100+i), readKey(t, b, k), "bytes of %q", k)
		info, err := b.Stat(t.Context(), k)
		require.NoError(t, err)
		require.Equal(t, k, info.Key)
		require.Equal(t, int64(100+i), info.Size)
	}
	require.Equal(t, []string{keys[3], keys[2]}, listKeys(t, b, "thumbnails/"))
	require.Empty(t, listKeys(t, b, "cas/"), "non-CAS keys are not listed under cas/")
	for _, k := range keys {
		require.NoError(t, b.Delete(t.Context(), k))
		requireNotFound(t, b, k)
	}
}

func testConcurrent(t *testing.T, b cas.Backend) {
	const workers, perWorker = 8, 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	report := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			ctx := t.Context()
			for i := range perWorker {
				key := fmt.Sprintf("conc/%d/%d", w, i)
				p := data(uint64(w*1000+i), 512+i)
				if err := b.Put(ctx, key, bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true}); err != nil {
					report(fmt.Errorf("Put %q: %w", key, err))
					continue
				}
				if info, err := b.Stat(ctx, key); err != nil || info.Size != int64(len(p)) {
					report(fmt.Errorf("Stat %q: %+v, %v", key, info, err))
				}
				obj, err := b.Open(ctx, key)
				if err != nil {
					report(fmt.Errorf("Open %q: %w", key, err))
					continue
				}
				got, err := io.ReadAll(obj)
				_ = obj.Close()
				if err != nil || !bytes.Equal(got, p) {
					report(fmt.Errorf("read %q: %d bytes, %v", key, len(got), err))
				}
				prev := ""
				for info, err := range b.List(ctx, "conc/") {
					if err != nil {
						report(fmt.Errorf("List: %w", err))
						break
					}
					if info.Key <= prev {
						report(fmt.Errorf("List order: %q after %q", info.Key, prev))
						break
					}
					prev = info.Key
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, listKeys(t, b, "conc/"), workers*perWorker)
}

func testConcurrentIfAbsent(t *testing.T, b cas.Backend) {
	const writers = 12
	type result struct {
		i   int
		err error
	}
	results := make(chan result, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			p := data(uint64(500+i), 8<<10)
			<-start
			results <- result{i, b.Put(t.Context(), "race/key", bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true})}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	winner := -1
	for r := range results {
		if r.err == nil {
			require.Equal(t, -1, winner, "two IfAbsent Puts of one key succeeded: %d and %d", winner, r.i)
			winner = r.i
			continue
		}
		require.ErrorIs(t, r.err, cas.ErrExists, "losing writer %d", r.i)
	}
	require.NotEqual(t, -1, winner, "no IfAbsent Put succeeded")
	require.True(t, bytes.Equal(data(uint64(500+winner), 8<<10), readKey(t, b, "race/key")), "stored bytes are the winner's")
}

func testStore(t *testing.T, b cas.Backend) {
	ctx := t.Context()
	s := cas.New(b, cas.WithTempDir(t.TempDir()), cas.WithSpoolThreshold(64<<10))
	for _, size := range []int{0, 1000, 64 << 10, 300 << 10} {
		p := data(uint64(size)+7, size)
		want := cas.SumBytes(p)
		res, err := s.Put(ctx, bytes.NewReader(p))
		require.NoError(t, err, "Store.Put of %d bytes", size)
		require.Equal(t, cas.PutResult{Hash: want, Size: int64(size)}, res)
		res, err = s.Put(ctx, bytes.NewReader(p))
		require.NoError(t, err)
		require.Equal(t, cas.PutResult{Hash: want, Size: int64(size), Deduplicated: true}, res, "second Put deduplicates")
		require.True(t, bytes.Equal(p, readKey(t, b, want.Key())), "Store.Put stored the bytes under cas/<hex>")
		obj, err := s.Open(ctx, want)
		require.NoError(t, err)
		got, err := io.ReadAll(obj)
		require.NoError(t, obj.Close())
		require.NoError(t, err)
		require.True(t, bytes.Equal(p, got))
		require.NoError(t, s.Verify(ctx, want))
	}

	p := data(42, 100<<10)
	wrong := cas.SumBytes([]byte("not these bytes"))
	_, err := s.PutVerified(ctx, wrong, bytes.NewReader(p))
	require.ErrorIs(t, err, cas.ErrDigestMismatch)
	ok, err := s.Has(ctx, cas.SumBytes(p))
	require.NoError(t, err)
	require.False(t, ok, "a mismatched PutVerified stores nothing")
	ok, err = s.Has(ctx, wrong)
	require.NoError(t, err)
	require.False(t, ok)

	put(t, b, "legacy/not-a-blob", []byte("legacy"), cas.PutOptions{})
	var walked []string
	for info, err := range s.Walk(ctx) {
		require.NoError(t, err)
		walked = append(walked, info.Key)
	}
	require.Len(t, walked, 4, "Walk yields the four blobs and skips legacy keys")
	require.True(t, slices.IsSorted(walked))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Put(cctx, bytes.NewReader(data(43, 200<<10)))
	require.ErrorIs(t, err, context.Canceled)
	ok, err = s.Has(ctx, cas.SumBytes(data(43, 200<<10)))
	require.NoError(t, err)
	require.False(t, ok, "a cancelled Store.Put stores nothing")
	require.Len(t, listKeys(t, b, ""), 5)
}

func testStager(t *testing.T, b cas.Backend) {
	st, ok := b.(cas.Stager)
	if !ok {
		t.Skipf("%T does not implement cas.Stager", b)
	}
	ctx := t.Context()
	p := data(60, 200<<10)
	h := cas.SumBytes(p)

	obj, err := st.Stage(ctx)
	require.NoError(t, err)
	for chunk := range slices.Chunk(p, 7000) {
		n, err := obj.Write(chunk)
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	requireNotFound(t, b, h.Key())
	require.Empty(t, listKeys(t, b, ""), "staged bytes are not listed before Commit")
	require.NoError(t, obj.Commit(ctx, h.Key()))
	require.True(t, bytes.Equal(p, readKey(t, b, h.Key())))

	// Commit over an existing key: ErrExists, original intact.
	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("other bytes"))
	require.NoError(t, err)
	require.ErrorIs(t, obj.Commit(ctx, h.Key()), cas.ErrExists)
	require.True(t, bytes.Equal(p, readKey(t, b, h.Key())))

	// Abort discards.
	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("aborted"))
	require.NoError(t, err)
	require.NoError(t, obj.Abort())
	requireNotFound(t, b, "legacy/aborted")

	// Commit with a cancelled context publishes nothing.
	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("cancelled"))
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, obj.Commit(cctx, "legacy/cancelled"), context.Canceled)
	requireNotFound(t, b, "legacy/cancelled")

	// Non-CAS keys can be committed too.
	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("thumb"))
	require.NoError(t, err)
	require.NoError(t, obj.Commit(ctx, "thumbnails/"+h.String()+"_150.jpg"))

	require.Equal(t, []string{h.Key(), "thumbnails/" + h.String() + "_150.jpg"}, listKeys(t, b, ""),
		"only committed objects are listed")
}
