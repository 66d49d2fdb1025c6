package cas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// onePassReader fails the test if it is read again after it returned EOF,
// and hides every method but Read (in particular io.Seeker and WriterTo).
type onePassReader struct {
	r        io.Reader
	eof      bool
	afterEOF atomic.Int32
	n        int64
}

func (o *onePassReader) Read(p []byte) (int, error) {
	if o.eof {
		o.afterEOF.Add(1)
		return 0, errors.New("onePassReader: read after EOF")
	}
	n, err := o.r.Read(p)
	o.n += int64(n)
	if err == io.EOF {
		o.eof = true
	}
	return n, err
}

// cancelReader cancels its context once after bytes have been read, and
// then goes on delivering bytes, as a slow client would.
type cancelReader struct {
	r      io.Reader
	after  int64
	n      int64
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if len(p) > 4096 {
		p = p[:4096] // slow: small chunks
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

// faultyFS returns a new fsstore (inner), its temporary directories and a
// faulty.Backend over it with opts: the staged route's fault-injection
// set-up.
func faultyFS(t *testing.T, opts ...faulty.Option) (inner cas.Backend, tmps []string, f *faulty.Backend) {
	t.Helper()
	fsCase := backendtest.FS()
	inner = fsCase.New(t)
	return inner, fsCase.TempDirs(inner), faulty.New(inner, opts...)
}

// requireNoFiles asserts that no regular file is left under the dirs.
func requireNoFiles(t testing.TB, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		var files []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return fs.SkipAll
			}
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, path)
			}
			return nil
		})
		require.NoError(t, err)
		require.Empty(t, files, "files left behind in %s", dir)
	}
}

// keys lists every key of b.
func keys(t testing.TB, b cas.Backend) []string {
	t.Helper()
	var out []string
	for info, err := range b.List(context.Background(), "") {
		require.NoError(t, err)
		out = append(out, info.Key)
	}
	return out
}

// spoolingStore returns a Store over b, made by bc, that spools bodies
// over threshold bytes into a directory of its own, with opts; and
// requireClean, which asserts that neither that directory nor b's
// temporary directories hold a file (as between Puts).
func spoolingStore(t testing.TB, bc backendtest.Case, b cas.Backend, threshold int64, opts ...cas.Option) (s *cas.Store, requireClean func()) {
	t.Helper()
	spool := t.TempDir()
	dirs := append(bc.TempDirs(b), spool)
	s = cas.New(b, append(opts, cas.WithSpoolThreshold(threshold), cas.WithTempDir(spool))...)
	return s, func() {
		t.Helper()
		requireNoFiles(t, dirs...)
	}
}

func readAll(t testing.TB, s *cas.Store, h cas.Hash) []byte {
	t.Helper()
	obj, err := s.Open(context.Background(), h)
	require.NoError(t, err)
	defer obj.Close()
	b, err := io.ReadAll(obj)
	require.NoError(t, err)
	return b
}

func TestPutStreamsOnePass(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		for _, size := range []int{0, 1, 1000, 4096, 4097, 300_000} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				t.Parallel()
				b := bc.New(t)
				// A small threshold sends the larger sizes through the spool file.
				s, requireClean := spoolingStore(t, bc, b, 4096)
				data := testutil.Bytes(uint64(size), size)
				r := &onePassReader{r: iotest.HalfReader(bytes.NewReader(data))}
				res, err := s.Put(t.Context(), r)
				require.NoError(t, err)
				require.Zero(t, r.afterEOF.Load(), "Put read again after EOF")
				require.Equal(t, int64(size), r.n, "Put read every byte once")
				require.Equal(t, cas.SumBytes(data), res.Hash)
				require.Equal(t, int64(size), res.Size)
				require.False(t, res.Deduplicated)
				require.Equal(t, data, readAll(t, s, res.Hash))
				require.Equal(t, []string{res.Hash.Key()}, keys(t, b))
				requireClean()
			})
		}
	})
}

func TestPutSpooledCleansUp(t *testing.T) {
	t.Parallel()
	// memstore is no cas.Stager: Put spools to WithTempDir above the threshold.
	b := memstore.New()
	_, isStager := cas.Backend(b).(cas.Stager)
	require.False(t, isStager, "this test needs a Backend without staging")
	spool := t.TempDir()
	s := cas.New(b, cas.WithSpoolThreshold(1024), cas.WithTempDir(spool))
	ctx := t.Context()

	var want []string
	for i, size := range []int{0, 1023, 1024, 1025, 100 << 10} {
		data := testutil.Bytes(uint64(100+i), size)
		res, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, cas.SumBytes(data), res.Hash)
		require.Equal(t, data, readAll(t, s, res.Hash))
		requireNoFiles(t, spool)
		want = append(want, res.Hash.Key())
	}
	slices.Sort(want)
	require.Equal(t, want, keys(t, b))

	// A reader that fails after the spool file was created.
	boom := errors.New("boom")
	_, err := s.Put(ctx, io.MultiReader(bytes.NewReader(testutil.Bytes(1, 5000)), iotest.ErrReader(boom)))
	require.ErrorIs(t, err, boom)
	requireNoFiles(t, spool)
	require.Equal(t, want, keys(t, b), "nothing stored")

	// A spool directory that cannot be used: a clear error, nothing stored.
	bad := cas.New(b, cas.WithSpoolThreshold(1024), cas.WithTempDir(filepath.Join(spool, "missing")))
	_, err = bad.Put(ctx, bytes.NewReader(testutil.Bytes(2, 5000)))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Equal(t, want, keys(t, b), "nothing stored")

	// A failing backend Put after spooling.
	f := faulty.New(b, faulty.WithFailNth(faulty.MethodPut, 1))
	failing := cas.New(f, cas.WithSpoolThreshold(1024), cas.WithTempDir(spool))
	_, err = failing.Put(ctx, bytes.NewReader(testutil.Bytes(3, 5000)))
	require.ErrorIs(t, err, faulty.ErrInjected)
	requireNoFiles(t, spool)
	require.Equal(t, want, keys(t, b), "nothing stored")
}

func TestPutDeduplicates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		inner := bc.New(t)
		tmps := bc.TempDirs(inner)
		f := faulty.New(inner)
		s := cas.New(f, cas.WithTempDir(t.TempDir()), cas.WithSpoolThreshold(1024))
		data := testutil.Bytes(7, 10_000)

		first, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
		require.False(t, first.Deduplicated)
		require.Equal(t, 1, f.Calls(faulty.MethodPut))

		second, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
		require.True(t, second.Deduplicated)
		require.Equal(t, first.Hash, second.Hash)
		require.Equal(t, first.Size, second.Size)
		require.Equal(t, 1, f.Calls(faulty.MethodPut), "no second backend Put")
		require.Equal(t, []string{first.Hash.Key()}, keys(t, inner))
		requireNoFiles(t, tmps...)
	})
}

func TestPutDeduplicatesStaged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner, tmps, f := faultyFS(t)
	b := f.Staging()
	_, isStager := b.(cas.Stager)
	require.True(t, isStager, "fsstore stages")
	s := cas.New(b)
	data := testutil.Bytes(8, 10_000)

	first, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	second, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.False(t, first.Deduplicated)
	require.True(t, second.Deduplicated)
	require.Equal(t, first.Hash, second.Hash)
	require.Zero(t, f.Calls(faulty.MethodPut), "staged Puts do not use Backend.Put")
	require.Equal(t, 2, f.Calls(faulty.MethodStage))
	require.Equal(t, []string{first.Hash.Key()}, keys(t, inner))
	requireNoFiles(t, tmps...)
}

func TestPutConcurrentIdentical(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		b := bc.New(t)
		s, requireClean := spoolingStore(t, bc, b, 4096)
		data := testutil.Bytes(9, 50_000)
		want := cas.SumBytes(data)

		const n = 32
		results := make([]cas.PutResult, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.Put(context.Background(), bytes.NewReader(data))
			})
		}
		close(start)
		wg.Wait()

		written := 0
		for i := range n {
			require.NoError(t, errs[i], "Put %d", i)
			require.Equal(t, want, results[i].Hash)
			require.Equal(t, int64(len(data)), results[i].Size)
			if !results[i].Deduplicated {
				written++
			}
		}
		require.Equal(t, 1, written, "exactly one Put wrote the blob")
		require.Equal(t, []string{want.Key()}, keys(t, b))
		require.Equal(t, data, readAll(t, s, want))
		require.NoError(t, s.Verify(t.Context(), want))
		requireClean()
	})
}

func TestPutMaxSize(t *testing.T) {
	t.Parallel()
	const limit = 10_000
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		s, requireClean := spoolingStore(t, bc, b, 1024, cas.WithMaxSize(limit))

		for _, r := range []io.Reader{
			bytes.NewReader(testutil.Bytes(10, limit+1)),
			testutil.Reader(11, 1<<40), // a reader that would go on for a TiB
		} {
			res, err := s.Put(ctx, r)
			require.ErrorIs(t, err, cas.ErrTooLarge)
			require.Zero(t, res)
			require.Empty(t, keys(t, b), "nothing stored")
			requireClean()
		}

		// PutVerified with the right hash is still too large.
		big := testutil.Bytes(12, limit+1)
		_, err := s.PutVerified(ctx, cas.SumBytes(big), bytes.NewReader(big))
		require.ErrorIs(t, err, cas.ErrTooLarge)
		require.Empty(t, keys(t, b))

		data := testutil.Bytes(13, limit)
		res, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err, "exactly at the limit")
		require.Equal(t, int64(limit), res.Size)
		require.Equal(t, data, readAll(t, s, res.Hash))
		requireClean()
	})
}

func TestPutCancelled(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		b := bc.New(t)
		s, requireClean := spoolingStore(t, bc, b, 16<<10)

		for _, after := range []int64{1, 8 << 10, 64 << 10} {
			ctx, cancel := context.WithCancel(t.Context())
			r := &cancelReader{r: testutil.Reader(uint64(after), 1<<20), after: after, cancel: cancel}
			res, err := s.Put(ctx, r)
			require.ErrorIs(t, err, context.Canceled, "cancelled after %d bytes", after)
			require.Zero(t, res)
			require.Less(t, r.n, int64(1<<20), "Put stopped reading")
			require.Empty(t, keys(t, b), "nothing stored")
			requireClean()
		}

		// Already cancelled: nothing is read.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		r := &onePassReader{r: testutil.Reader(1, 1000)}
		_, err := s.Put(ctx, r)
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, r.n)
		require.Empty(t, keys(t, b))
	})
}

func TestPutVerified(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		s, requireClean := spoolingStore(t, bc, b, 1024)

		for _, size := range []int{0, 100, 5000} {
			data := testutil.Bytes(uint64(20+size), size)
			wrong := cas.SumBytes(append(slices.Clone(data), 'x'))
			_, err := s.PutVerified(ctx, wrong, bytes.NewReader(data))
			require.ErrorIs(t, err, cas.ErrDigestMismatch)
			require.Empty(t, keys(t, b), "nothing stored")
			requireClean()

			res, err := s.PutVerified(ctx, cas.SumBytes(data), bytes.NewReader(data))
			require.NoError(t, err)
			require.Equal(t, cas.SumBytes(data), res.Hash)
			require.Equal(t, data, readAll(t, s, res.Hash))
			require.NoError(t, s.Delete(ctx, res.Hash))
		}
	})
}

func TestVerify(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		s := cas.New(b)
		data := testutil.Bytes(30, 70_000)
		res, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
		require.NoError(t, s.Verify(ctx, res.Hash))

		// Flip one bit, same length.
		rotten := slices.Clone(data)
		rotten[len(rotten)/2] ^= 1
		bc.Corrupt(t, b, res.Hash.Key(), rotten)
		err = s.Verify(ctx, res.Hash)
		require.ErrorIs(t, err, cas.ErrDigestMismatch)
		require.Contains(t, err.Error(), res.Hash.String())

		missing := cas.SumBytes([]byte("never stored"))
		require.ErrorIs(t, s.Verify(ctx, missing), cas.ErrNotFound)
	})
}

func TestStoreOperations(t *testing.T) {
	t.Parallel()
	backendtest.EachParallel(t, func(t *testing.T, bc backendtest.Case) {
		ctx := t.Context()
		b := bc.New(t)
		s := cas.New(b)
		require.Same(t, b, s.Backend())

		var hashes []cas.Hash
		blobs := map[cas.Hash][]byte{}
		for i := range 5 {
			data := testutil.Bytes(uint64(40+i), 1000*i)
			res, err := s.Put(ctx, bytes.NewReader(data))
			require.NoError(t, err)
			hashes = append(hashes, res.Hash)
			blobs[res.Hash] = data
		}
		// Legacy keys and derived data share the Backend.
		for _, k := range []string{
			"6f1c3a1e-8b7d-4f0e-9a55-0c1d2e3f4a5b",
			"uploads/2024/report.pdf",
			"thumbnails/" + hashes[0].String() + "_200.jpg",
		} {
			require.NoError(t, b.Put(ctx, k, bytes.NewReader([]byte("legacy")), 6, cas.PutOptions{}))
		}

		for h, data := range blobs {
			ok, err := s.Has(ctx, h)
			require.NoError(t, err)
			require.True(t, ok)
			info, err := s.Stat(ctx, h)
			require.NoError(t, err)
			require.Equal(t, h.Key(), info.Key)
			require.Equal(t, int64(len(data)), info.Size)
			require.False(t, info.ModTime.IsZero())

			obj, err := s.Open(ctx, h)
			require.NoError(t, err)
			require.Equal(t, info.Key, obj.Info().Key)
			require.Equal(t, info.Size, obj.Info().Size)
			if len(data) > 10 {
				off, err := obj.Seek(int64(len(data)-10), io.SeekStart)
				require.NoError(t, err)
				require.Equal(t, int64(len(data)-10), off)
				tail, err := io.ReadAll(obj)
				require.NoError(t, err)
				require.Equal(t, data[len(data)-10:], tail)
			}
			require.NoError(t, obj.Close())
		}

		var walked []string
		for info, err := range s.Walk(ctx) {
			require.NoError(t, err)
			require.True(t, cas.IsKey(info.Key), info.Key)
			walked = append(walked, info.Key)
		}
		var want []string
		for _, h := range hashes {
			want = append(want, h.Key())
		}
		slices.Sort(want)
		slices.Sort(walked)
		require.Equal(t, want, walked, "Walk yields the CAS keys only")

		// Stopping a Walk early.
		n := 0
		for range s.Walk(ctx) {
			n++
			if n == 2 {
				break
			}
		}
		require.Equal(t, 2, n)

		missing := cas.SumBytes([]byte("missing"))
		ok, err := s.Has(ctx, missing)
		require.NoError(t, err)
		require.False(t, ok)
		_, err = s.Stat(ctx, missing)
		require.ErrorIs(t, err, cas.ErrNotFound)
		_, err = s.Open(ctx, missing)
		require.ErrorIs(t, err, cas.ErrNotFound)
		require.NoError(t, s.Delete(ctx, missing), "deleting a missing blob is no error")

		require.NoError(t, s.Delete(ctx, hashes[1]))
		ok, err = s.Has(ctx, hashes[1])
		require.NoError(t, err)
		require.False(t, ok)
		n = 0
		for _, err := range s.Walk(ctx) {
			require.NoError(t, err)
			n++
		}
		require.Equal(t, len(hashes)-1, n)
		require.Len(t, keys(t, b), len(hashes)-1+3, "legacy keys untouched")
	})
}

func TestWalkSkipsMalformedCASKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memstore.New()
	s := cas.New(b)
	h := cas.SumBytes([]byte("x"))
	for _, k := range []string{
		h.Key(),
		h.Key() + ".tmp",
		"cas/" + h.String()[:63],
		"cas/notahash",
		"cas/ab/" + h.String(),
		"cas/" + h.String()[:10] + "X" + h.String()[11:],
	} {
		require.NoError(t, b.Put(ctx, k, bytes.NewReader(nil), 0, cas.PutOptions{}))
	}
	var walked []string
	for info, err := range s.Walk(ctx) {
		require.NoError(t, err)
		walked = append(walked, info.Key)
	}
	require.Equal(t, []string{h.Key()}, walked)
}

func TestBackendErrorsPropagate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	f := faulty.New(inner)
	s := cas.New(f, cas.WithTempDir(t.TempDir()))
	data := testutil.Bytes(50, 3000)
	h := cas.SumBytes(data)

	// Stat fails: Has, Stat and Put report it rather than guessing.
	f.FailKeys(h.Key())
	ok, err := s.Has(ctx, h)
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.False(t, ok)
	_, err = s.Stat(ctx, h)
	require.ErrorIs(t, err, faulty.ErrInjected)
	_, err = s.Put(ctx, bytes.NewReader(data))
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.Empty(t, keys(t, inner))

	// Put fails.
	f.UnfailKeys(h.Key())
	f.FailNth(faulty.MethodPut, 1)
	_, err = s.Put(ctx, bytes.NewReader(data))
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.Contains(t, err.Error(), h.String(), "the error names the blob")
	require.Empty(t, keys(t, inner))
	_, err = s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)

	// Open, Delete, Verify and Walk.
	f.FailKeys(h.Key())
	_, err = s.Open(ctx, h)
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.ErrorIs(t, s.Delete(ctx, h), faulty.ErrInjected)
	require.ErrorIs(t, s.Verify(ctx, h), faulty.ErrInjected)
	f.UnfailKeys(h.Key())
	f.SetReadFailAfter(1000)
	err = s.Verify(ctx, h)
	require.ErrorIs(t, err, faulty.ErrInjected, "a read failing mid-stream")
	require.NotErrorIs(t, err, cas.ErrDigestMismatch)
	f.SetReadFailAfter(-1)
	require.NoError(t, s.Verify(ctx, h))

	f.SetFailRate(1, faulty.MethodList)
	var errs []error
	for _, err := range s.Walk(ctx) {
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], faulty.ErrInjected)

	// A custom backend error is passed through intact.
	f.ClearFaults()
	quota := errors.New("quota exceeded")
	f.SetError(quota)
	f.FailNth(faulty.MethodPut, f.Calls(faulty.MethodPut)+1)
	_, err = s.Put(ctx, bytes.NewReader(testutil.Bytes(51, 10)))
	require.ErrorIs(t, err, quota)
}

func TestBackendErrorsPropagateStaged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner, tmps, f := faultyFS(t, faulty.WithFailNth(faulty.MethodStage, 1), faulty.WithFailNth(faulty.MethodCommit, 1))
	s := cas.New(f.Staging())
	data := testutil.Bytes(52, 300_000)

	_, err := s.Put(ctx, bytes.NewReader(data))
	require.ErrorIs(t, err, faulty.ErrInjected, "Stage fails")
	_, err = s.Put(ctx, bytes.NewReader(data))
	require.ErrorIs(t, err, faulty.ErrInjected, "Commit fails")
	require.Empty(t, keys(t, inner), "nothing stored")
	requireNoFiles(t, tmps...)

	res, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.Equal(t, []string{res.Hash.Key()}, keys(t, inner))
	requireNoFiles(t, tmps...)
}

func TestPutCancelledInBackend(t *testing.T) {
	t.Parallel()
	// The context ends while the backend is slow: Put returns the
	// context's error, stores nothing and leaves no spool file.
	inner := memstore.New()
	f := faulty.New(inner, faulty.WithLatency(time.Hour))
	spool := t.TempDir()
	s := cas.New(f, cas.WithSpoolThreshold(1024), cas.WithTempDir(spool))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Put(ctx, bytes.NewReader(testutil.Bytes(70, 5000)))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, keys(t, inner))
	requireNoFiles(t, spool)
}

// TestPutSpoolThreshold shows where the spooled path switches from memory to
// a temp file: a blob of exactly the threshold stays in memory (it succeeds
// even though the temp dir does not exist), one byte more needs the file.
func TestPutSpoolThreshold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "does-not-exist")
	s := cas.New(memstore.New(), cas.WithSpoolThreshold(16), cas.WithTempDir(missing))

	res, err := s.Put(ctx, bytes.NewReader(bytes.Repeat([]byte{'a'}, 16)))
	require.NoError(t, err)
	require.EqualValues(t, 16, res.Size)

	_, err = s.Put(ctx, bytes.NewReader(bytes.Repeat([]byte{'b'}, 17)))
	require.ErrorIs(t, err, fs.ErrNotExist, "17 bytes must spool to the (missing) temp dir")
	ok, err := s.Has(ctx, cas.SumBytes(bytes.Repeat([]byte{'b'}, 17)))
	require.NoError(t, err)
	require.False(t, ok)
}

// cancelAfter is a reader that knows no context: it cancels ctx once it
// has yielded n bytes, then yields zeros forever.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	clear(p)
	c.n -= len(p)
	return len(p), nil
}

// TestPutStopsReadingOnCancel: a Put from an endless reader that knows no
// context stops once ctx is cancelled, stores nothing, and wraps ctx's error.
func TestPutStopsReadingOnCancel(t *testing.T) {
	t.Parallel()
	for _, bc := range []backendtest.Case{backendtest.Mem(), backendtest.FS()} {
		t.Run(bc.Name, func(t *testing.T) {
			b := bc.New(t)
			s := cas.New(b, cas.WithTempDir(t.TempDir()))
			ctx, cancel := context.WithCancel(t.Context())
			_, err := s.Put(ctx, &cancelAfter{n: 1 << 20, cancel: cancel})
			require.ErrorIs(t, err, context.Canceled)
			for info, err := range s.Walk(t.Context()) {
				require.NoError(t, err)
				t.Fatalf("stored %v after a cancelled Put", info)
			}
		})
	}
}

// TestPutHugeLimits: a maximum size or spool threshold of math.MaxInt64
// means "no limit"; the one byte added to detect an overflowing blob must
// not wrap around to a negative limit that reads nothing and stores the
// empty blob instead.
func TestPutHugeLimits(t *testing.T) {
	t.Parallel()
	fsNew := backendtest.FS().New
	p := []byte("the bytes must arrive whole")
	for _, tc := range []struct {
		name string
		opts []cas.Option
		b    cas.Backend
	}{
		{"maxsize/mem", []cas.Option{cas.WithMaxSize(math.MaxInt64)}, memstore.New()},
		{"maxsize/fs", []cas.Option{cas.WithMaxSize(math.MaxInt64)}, fsNew(t)},
		{"spool/mem", []cas.Option{cas.WithSpoolThreshold(math.MaxInt64)}, memstore.New()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := cas.New(tc.b, tc.opts...)
			res, err := s.Put(t.Context(), bytes.NewReader(p))
			require.NoError(t, err)
			require.Equal(t, cas.SumBytes(p), res.Hash)
			require.EqualValues(t, len(p), res.Size)
		})
	}
}

// existsLiar answers every create-only Put with ErrExists and stores
// nothing, as S3 does with 409 ConditionalRequestConflict when a concurrent
// delete or upload of the key won the race but the key is not there.
type existsLiar struct{ cas.Backend }

func (e existsLiar) Put(ctx context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	if opts.IfAbsent {
		return fmt.Errorf("conflict on %q: %w", key, cas.ErrExists)
	}
	return e.Backend.Put(ctx, key, r, size, opts)
}

// TestPutErrExistsWithoutObjectIsNoDedup: Put reports Deduplicated only
// when the blob is really stored. Trusting an ErrExists for a blob that is
// missing would let a caller (migrate.Run) commit a record to a key with no
// object.
func TestPutErrExistsWithoutObjectIsNoDedup(t *testing.T) {
	t.Parallel()
	s := cas.New(existsLiar{memstore.New()})
	p := []byte("not stored by anyone")
	_, err := s.Put(t.Context(), bytes.NewReader(p))
	require.Error(t, err, "Put must not claim a blob that is not stored")
	require.NotErrorIs(t, err, cas.ErrExists, "an ErrExists would read as deduplicated")
	ok, err := s.Has(t.Context(), cas.SumBytes(p))
	require.NoError(t, err)
	require.False(t, ok)
}
