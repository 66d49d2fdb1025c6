package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

func faultPut(t *testing.T, b cas.Backend, key, data string) error {
	t.Helper()
	return b.Put(t.Context(), key, strings.NewReader(data), int64(len(data)), cas.PutOptions{})
}

func TestBackendCountsAndPassesThrough(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	f := faulty.New(inner)
	require.Same(t, inner, f.Inner())

	require.NoError(t, faultPut(t, f, "a", "alpha"))
	require.NoError(t, faultPut(t, f, "b", "beta"))
	info, err := f.Stat(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, int64(5), info.Size)
	_, err = f.Stat(ctx, "missing")
	require.ErrorIs(t, err, cas.ErrNotFound, "inner errors pass through")

	obj, err := f.Open(ctx, "b")
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.NoError(t, obj.Close())
	require.Equal(t, "beta", string(got))

	var keys []string
	for info, err := range f.List(ctx, "") {
		require.NoError(t, err)
		keys = append(keys, info.Key)
	}
	require.Equal(t, []string{"a", "b"}, keys)
	require.NoError(t, f.Delete(ctx, "a"))
	_, err = inner.Stat(ctx, "a")
	require.ErrorIs(t, err, cas.ErrNotFound)

	want := map[string]int{"Put": 2, "Stat": 2, "Open": 1, "List": 1, "Delete": 1}
	require.Empty(t, cmp.Diff(want, f.Counts()))
	require.Equal(t, 2, f.Calls(faulty.MethodStat))
	require.Equal(t, 0, f.Calls(faulty.MethodCommit))

	// Counts is a copy.
	c := f.Counts()
	c["Put"] = 100
	require.Equal(t, 2, f.Calls("Put"))

	f.Reset()
	require.Empty(t, f.Counts())
	require.Equal(t, 0, f.Calls("Put"))
}

func TestBackendFailNth(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	f := faulty.New(inner, faulty.WithFailNth(faulty.MethodPut, 2))
	f.FailNth(faulty.MethodStat, 1, 3)

	require.NoError(t, faultPut(t, f, "k1", "1"))
	err := faultPut(t, f, "k2", "2")
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.Contains(t, err.Error(), `"k2"`)
	_, err = inner.Stat(ctx, "k2")
	require.ErrorIs(t, err, cas.ErrNotFound, "a faulted call does not reach the inner backend")
	require.NoError(t, faultPut(t, f, "k3", "3"))

	var errs []bool
	for range 4 {
		_, err := f.Stat(ctx, "k1")
		errs = append(errs, errors.Is(err, faulty.ErrInjected))
	}
	require.Equal(t, []bool{true, false, true, false}, errs)

	// After Reset the call numbers start again.
	f.Reset()
	_, err = f.Stat(ctx, "k1")
	require.ErrorIs(t, err, faulty.ErrInjected)
	f.ClearFaults()
	f.Reset()
	_, err = f.Stat(ctx, "k1")
	require.NoError(t, err)
}

func TestBackendFailKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	require.NoError(t, faultPut(t, inner, "bad", "x"))
	f := faulty.New(inner, faulty.WithFailKeys("bad"))
	f.FailKeys("worse")

	_, err := f.Stat(ctx, "bad")
	require.ErrorIs(t, err, faulty.ErrInjected)
	_, err = f.Open(ctx, "bad")
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.ErrorIs(t, f.Delete(ctx, "bad"), faulty.ErrInjected)
	_, err = inner.Stat(ctx, "bad")
	require.NoError(t, err, "the faulted Delete did not delete")
	require.ErrorIs(t, faultPut(t, f, "worse", "y"), faulty.ErrInjected)
	require.NoError(t, faultPut(t, f, "good", "z"))

	// List is not affected by key faults.
	n := 0
	for _, err := range f.List(ctx, "") {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 2, n)

	f.UnfailKeys("bad")
	_, err = f.Stat(ctx, "bad")
	require.NoError(t, err)
	require.ErrorIs(t, faultPut(t, f, "worse", "y"), faulty.ErrInjected)
}

func faultPattern(ctx context.Context, f *faulty.Backend, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		_, err := f.Stat(ctx, "k")
		out[i] = errors.Is(err, faulty.ErrInjected)
	}
	return out
}

func TestBackendFailRate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	require.NoError(t, faultPut(t, inner, "k", "v"))

	a := faulty.New(inner, faulty.WithSeed(7), faulty.WithFailRate(0.2, faulty.MethodStat))
	b := faulty.New(inner, faulty.WithSeed(7))
	b.SetFailRate(0.2, faulty.MethodStat)
	pa, pb := faultPattern(ctx, a, 2000), faultPattern(ctx, b, 2000)
	require.Equal(t, pa, pb, "the same seed gives the same faults")

	failed := 0
	for _, x := range pa {
		if x {
			failed++
		}
	}
	// Binomial(2000, 0.2): mean 400, sd ~18.
	require.InDelta(t, 400, failed, 100)

	c := faulty.New(inner, faulty.WithSeed(8), faulty.WithFailRate(0.2, faulty.MethodStat))
	require.NotEqual(t, pa, faultPattern(ctx, c, 2000), "another seed gives other faults")

	// Methods not chosen are not faulted.
	for range 200 {
		obj, err := a.Open(ctx, "k")
		require.NoError(t, err)
		require.NoError(t, obj.Close())
	}

	// Rate 1 fails everything; no methods means every method.
	a.SetFailRate(1)
	_, err := a.Open(ctx, "k")
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.ErrorIs(t, faultPut(t, a, "n", "v"), faulty.ErrInjected)

	// Rate 0 turns faults off at runtime.
	a.SetFailRate(0)
	for _, x := range faultPattern(ctx, a, 500) {
		require.False(t, x)
	}
}

func TestBackendLatency(t *testing.T) {
	t.Parallel()
	inner := memstore.New()
	require.NoError(t, faultPut(t, inner, "k", "v"))
	const d = 30 * time.Millisecond
	f := faulty.New(inner, faulty.WithLatency(d))

	start := time.Now()
	_, err := f.Stat(t.Context(), "k")
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), d)

	f.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = f.Stat(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second, "the latency ends with the context")

	f.SetLatency(0)
	start = time.Now()
	_, err = f.Stat(t.Context(), "k")
	require.NoError(t, err)
	require.Less(t, time.Since(start), time.Hour)
	require.Equal(t, 3, f.Calls("Stat"))
}

func TestBackendReadFailAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	data := bytes.Repeat([]byte("0123456789"), 100)
	require.NoError(t, inner.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))

	f := faulty.New(inner, faulty.WithReadFailAfter(25))
	obj, err := f.Open(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), obj.Info().Size, "Info passes through")
	got, err := io.ReadAll(obj)
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.Equal(t, data[:25], got, "exactly the first 25 bytes arrive")
	require.NoError(t, obj.Close())

	_, _, err = cas.Sum(faultOpen(t, f, "k"))
	require.ErrorIs(t, err, faulty.ErrInjected)

	f.SetReadFailAfter(-1)
	h, n, err := cas.Sum(faultOpen(t, f, "k"))
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), n)
	require.Equal(t, cas.SumBytes(data), h)

	// A Store's Verify sees the injected error, not a digest mismatch.
	f.SetReadFailAfter(0)
	sum := cas.SumBytes(data)
	require.NoError(t, inner.Put(ctx, sum.Key(), bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
	err = cas.New(f).Verify(ctx, sum)
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.NotErrorIs(t, err, cas.ErrDigestMismatch)
}

func faultOpen(t *testing.T, b cas.Backend, key string) cas.Object {
	t.Helper()
	obj, err := b.Open(t.Context(), key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = obj.Close() })
	return obj
}

func TestBackendCustomErrorAndList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	require.NoError(t, faultPut(t, inner, "a", "1"))
	require.NoError(t, faultPut(t, inner, "b", "2"))
	custom := errors.New("disk on fire")
	f := faulty.New(inner, faulty.WithError(custom), faulty.WithFailNth(faulty.MethodList, 1))

	var errs []error
	var keys []string
	for info, err := range f.List(ctx, "") {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, info.Key)
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], custom)
	require.NotErrorIs(t, errs[0], faulty.ErrInjected)
	require.Empty(t, keys, "a faulted List yields only the error")

	keys = nil
	for info, err := range f.List(ctx, "") {
		require.NoError(t, err)
		keys = append(keys, info.Key)
	}
	require.Equal(t, []string{"a", "b"}, keys)

	// Breaking out of the iteration early is honoured.
	n := 0
	for range f.List(ctx, "") {
		n++
		break
	}
	require.Equal(t, 1, n)

	f.SetError(nil)
	f.FailNth(faulty.MethodList, 4)
	for _, err := range f.List(ctx, "") {
		require.ErrorIs(t, err, faulty.ErrInjected)
	}
}

func TestBackendWithStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	f := faulty.New(inner, faulty.WithFailNth(faulty.MethodPut, 1))
	require.Same(t, f, f.Staging(), "memstore is no Stager: Staging is f itself")
	_, isStager := cas.Backend(f).(cas.Stager)
	require.False(t, isStager)

	s := cas.New(f, cas.WithTempDir(t.TempDir()))
	data := []byte("some blob")
	_, err := s.Put(ctx, bytes.NewReader(data))
	require.ErrorIs(t, err, faulty.ErrInjected)
	has, err := s.Has(ctx, cas.SumBytes(data))
	require.NoError(t, err)
	require.False(t, has)

	res, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.Equal(t, cas.SumBytes(data), res.Hash)
	require.Equal(t, 2, f.Calls("Put"))
}

func TestBackendConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := memstore.New()
	require.NoError(t, faultPut(t, inner, "k", "v"))
	f := faulty.New(inner, faulty.WithFailRate(0.5))

	const workers, each = 16, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	injected, other := 0, 0
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if w == 0 && i%20 == 0 {
					// Change faults while other calls are in flight.
					f.SetFailRate(float64(i%40) / 40)
					f.FailKeys("other")
					f.SetReadFailAfter(int64(i))
				}
				_, err := f.Stat(ctx, "k")
				if err != nil {
					mu.Lock()
					if errors.Is(err, faulty.ErrInjected) {
						injected++
					} else {
						other++
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, workers*each, f.Calls("Stat"))
	require.Zero(t, other, "only injected errors")
	require.Positive(t, injected)
	require.Less(t, injected, workers*each)
}

func TestBackendStaging(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	inner, err := fsstore.New(dir)
	require.NoError(t, err)
	f := faulty.New(inner)
	b := f.Staging()
	st, ok := b.(cas.Stager)
	require.True(t, ok, "Staging forwards fsstore's cas.Stager")
	_, ok = cas.Backend(f).(cas.Stager)
	require.False(t, ok, "FaultBackend itself does not stage")

	data := []byte("staged bytes")
	h := cas.SumBytes(data)

	// A key fault on Commit aborts the staged object: nothing is published.
	f.FailKeys(h.Key())
	obj, err := st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write(data)
	require.NoError(t, err)
	require.ErrorIs(t, obj.Commit(ctx, h.Key()), faulty.ErrInjected)
	_, err = inner.Stat(ctx, h.Key())
	require.ErrorIs(t, err, cas.ErrNotFound)
	entries, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	require.NoError(t, err)
	require.Empty(t, entries, "the faulted Commit left no temp file")

	f.UnfailKeys(h.Key())
	f.FailNth(faulty.MethodStage, f.Calls(faulty.MethodStage)+1)
	_, err = st.Stage(ctx)
	require.ErrorIs(t, err, faulty.ErrInjected)

	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write(data)
	require.NoError(t, err)
	require.NoError(t, obj.Commit(ctx, h.Key()))
	got, err := io.ReadAll(faultOpen(t, b, h.Key()))
	require.NoError(t, err)
	require.Equal(t, data, got)

	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	require.NoError(t, obj.Abort())

	want := map[string]int{"Stage": 4, "Commit": 2, "Abort": 1, "Open": 1}
	require.Empty(t, cmp.Diff(want, f.Counts()))

	// The view shares faults with f, also for the plain methods.
	f.FailNth(faulty.MethodStat, 1)
	_, err = b.Stat(ctx, h.Key())
	require.ErrorIs(t, err, faulty.ErrInjected)
}

// TestBackendSetBefore: a hook runs before the call with its key, can fail
// it without reaching the inner Backend, can block it, and is removed by
// nil and by ClearFaults.
func TestBackendSetBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := memstore.New()
	f := faulty.New(inner)
	var seen []string
	f.SetBefore(faulty.MethodPut, func(_ context.Context, key string) error {
		seen = append(seen, key)
		if key == "refused" {
			return errors.New("refused by hook")
		}
		return nil
	})
	require.NoError(t, f.Put(ctx, "a", strings.NewReader("x"), 1, cas.PutOptions{}))
	err := f.Put(ctx, "refused", strings.NewReader("x"), 1, cas.PutOptions{})
	require.ErrorContains(t, err, "refused by hook")
	_, err = inner.Stat(ctx, "refused")
	require.ErrorIs(t, err, cas.ErrNotFound, "a failed hook does not reach the inner Backend")
	require.Equal(t, []string{"a", "refused"}, seen)

	release := make(chan struct{})
	entered := make(chan struct{})
	f.SetBefore(faulty.MethodDelete, func(context.Context, string) error {
		close(entered)
		<-release
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- f.Delete(ctx, "a") }()
	<-entered
	_, err = inner.Stat(ctx, "a")
	require.NoError(t, err, "the paused Delete has not reached the inner Backend")
	close(release)
	require.NoError(t, <-done)
	_, err = inner.Stat(ctx, "a")
	require.ErrorIs(t, err, cas.ErrNotFound)

	f.SetBefore(faulty.MethodPut, nil)
	require.NoError(t, f.Put(ctx, "refused", strings.NewReader("x"), 1, cas.PutOptions{}))
	f.SetBefore(faulty.MethodStat, func(context.Context, string) error { return errors.New("no") })
	f.ClearFaults()
	_, err = f.Stat(ctx, "refused")
	require.NoError(t, err, "ClearFaults removes hooks")
}
