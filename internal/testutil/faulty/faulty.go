// Package faulty wraps a cas.Backend to inject faults and count calls: a
// failure rate, the nth call of a method, chosen keys, latency, and reads
// that fail part-way, all deterministic under WithSeed. Tests use it to drive
// the error paths of Store, cashttp, thumbnail and migrate over real Backends.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/casa-go/casa/cas"
)

// ErrInjected is the default error a Backend injects. Injected errors
// wrap it (or the error set with WithError or SetError); test for them with
// errors.Is.
var ErrInjected = errors.New("faulty: injected fault")

// Method names, as counted by Backend.Calls and selected by FailNth
// and SetFailRate.
const (
	MethodStat   = "Stat"
	MethodOpen   = "Open"
	MethodPut    = "Put"
	MethodDelete = "Delete"
	MethodList   = "List"
	MethodStage  = "Stage"  // cas.Stager.Stage, through Staging only
	MethodCommit = "Commit" // cas.Staged.Commit, through Staging only
	// MethodCommitEncoded is cas.EncodedCommitter.CommitEncoded, through
	// Staging only, when the inner Staged implements it.
	MethodCommitEncoded = "CommitEncoded"
	MethodAbort         = "Abort" // cas.Staged.Abort, through Staging only; never faulted
)

// Backend is a cas.Backend that wraps another and injects faults: the
// Nth call of a method, a seeded random fraction of calls, every call on
// chosen keys, latency per call, and reads that fail mid-stream. It counts
// calls per method. Faults can be changed at any time, also while calls are
// in flight; it is safe for concurrent use.
//
// A call that is faulted does not reach the inner Backend. Injected errors
// wrap ErrInjected unless another error was set.
//
// Backend itself does not implement cas.Stager, so a cas.Store over it
// always uses the Backend's Put (for a Stager such as fsstore this means a
// spooled Put). Use Staging for a view that forwards cas.Stager, with faults
// applied to Stage and Commit.
type Backend struct {
	inner cas.Backend

	mu          sync.Mutex
	calls       map[string]int
	nth         map[string]map[int]bool // method -> call numbers (1-based) that fail
	rate        float64
	rateMethods map[string]bool // nil: every method
	rng         *rand.Rand
	keys        map[string]bool
	latency     time.Duration
	readAfter   int64 // < 0: reads do not fail
	err         error
	before      map[string]func(ctx context.Context, key string) error
}

var _ cas.Backend = (*Backend)(nil)

// Option configures a Backend.
type Option func(*Backend)

// WithSeed seeds the generator that picks which calls fail under a fail
// rate. The default seed is 1, so runs are reproducible.
func WithSeed(seed uint64) Option {
	return func(f *Backend) { f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// WithFailRate is SetFailRate at construction.
func WithFailRate(rate float64, methods ...string) Option {
	return func(f *Backend) { f.setFailRate(rate, methods) }
}

// WithFailNth is FailNth at construction.
func WithFailNth(method string, n ...int) Option {
	return func(f *Backend) { f.failNth(method, n) }
}

// WithFailKeys is FailKeys at construction.
func WithFailKeys(keys ...string) Option {
	return func(f *Backend) { f.failKeys(keys) }
}

// WithLatency is SetLatency at construction.
func WithLatency(d time.Duration) Option {
	return func(f *Backend) { f.latency = d }
}

// WithReadFailAfter is SetReadFailAfter at construction.
func WithReadFailAfter(n int64) Option {
	return func(f *Backend) { f.readAfter = n }
}

// WithError sets the error injected faults wrap, instead of ErrInjected.
func WithError(err error) Option {
	return func(f *Backend) {
		if err != nil {
			f.err = err
		}
	}
}

// New returns a Backend over inner. Without options it
// injects nothing and only counts calls.
func New(inner cas.Backend, opts ...Option) *Backend {
	f := &Backend{
		inner:     inner,
		calls:     make(map[string]int),
		nth:       make(map[string]map[int]bool),
		keys:      make(map[string]bool),
		readAfter: -1,
		err:       ErrInjected,
	}
	WithSeed(1)(f)
	for _, o := range opts {
		o(f)
	}
	return f
}

// Inner returns the wrapped Backend.
func (f *Backend) Inner() cas.Backend { return f.inner }

// SetFailRate makes a fraction rate (0 to 1) of the calls of the given
// methods fail, chosen by the seeded generator; with no methods it applies
// to every method. A rate of 0 turns random faults off.
func (f *Backend) SetFailRate(rate float64, methods ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setFailRate(rate, methods)
}

func (f *Backend) setFailRate(rate float64, methods []string) {
	f.rate = min(max(rate, 0), 1)
	f.rateMethods = nil
	if len(methods) > 0 {
		f.rateMethods = make(map[string]bool, len(methods))
		for _, m := range methods {
			f.rateMethods[m] = true
		}
	}
}

// FailNth makes the nth calls (1-based, counted as Calls counts them) of
// method fail.
func (f *Backend) FailNth(method string, n ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNth(method, n)
}

func (f *Backend) failNth(method string, n []int) {
	set := f.nth[method]
	if set == nil {
		set = make(map[int]bool)
		f.nth[method] = set
	}
	for _, i := range n {
		set[i] = true
	}
}

// FailKeys makes every call on the given keys fail: Stat, Open, Put,
// Delete and Commit. List is not affected.
func (f *Backend) FailKeys(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failKeys(keys)
}

func (f *Backend) failKeys(keys []string) {
	for _, k := range keys {
		f.keys[k] = true
	}
}

// UnfailKeys undoes FailKeys for the given keys.
func (f *Backend) UnfailKeys(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.keys, k)
	}
}

// SetLatency delays every call by d before it proceeds (or fails). The
// delay ends early, with the context's error, when the context is done.
func (f *Backend) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// SetReadFailAfter makes objects returned by later Opens fail their reads
// once n bytes have been read from them (counted over all reads, whatever
// Seeks came between): the first n bytes arrive, then every Read fails,
// even at the end of the object. n < 0 turns this off.
func (f *Backend) SetReadFailAfter(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readAfter = n
}

// SetError sets the error injected faults wrap; nil restores ErrInjected.
func (f *Backend) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	f.err = err
}

// SetBefore makes every later call of method run fn first, with the
// call's context and key ("" for Stage; the prefix for List). An error
// from fn fails the call without reaching the inner Backend; fn may block,
// which pauses the caller at exactly that point (tests of races use it).
// A nil fn removes the hook. ClearFaults removes every hook.
func (f *Backend) SetBefore(method string, fn func(ctx context.Context, key string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.before == nil {
		f.before = make(map[string]func(context.Context, string) error)
	}
	if fn == nil {
		delete(f.before, method)
		return
	}
	f.before[method] = fn
}

// ClearFaults removes every fault: Nth calls, fail rate, keys, latency and
// read faults. Counts and the injected error are kept.
func (f *Backend) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nth = make(map[string]map[int]bool)
	f.rate, f.rateMethods = 0, nil
	f.keys = make(map[string]bool)
	f.latency = 0
	f.readAfter = -1
	f.before = nil
}

// Calls returns how many times method was called since creation or the
// last Reset, faulted calls included.
func (f *Backend) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Counts returns a copy of the call counts by method.
func (f *Backend) Counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

// Reset sets every call count to zero. Nth-call faults count from the
// reset.
func (f *Backend) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.calls)
}

// enter counts a call, waits for the latency, and returns the fault to
// inject, if any.
func (f *Backend) enter(ctx context.Context, method, key string, hasKey bool) error {
	f.mu.Lock()
	f.calls[method]++
	n := f.calls[method]
	fail := f.nth[method][n] || (hasKey && f.keys[key])
	if !fail && f.rate > 0 && (f.rateMethods == nil || f.rateMethods[method]) {
		fail = f.rng.Float64() < f.rate
	}
	injected, latency := f.err, f.latency
	before := f.before[method]
	f.mu.Unlock()

	if before != nil {
		// Outside the lock: a hook may block (to pause the caller at this
		// point) while other calls go on.
		if err := before(ctx, key); err != nil {
			return fmt.Errorf("faulty: %s %q (call %d): %w", method, key, n, err)
		}
	}

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if !fail {
		return nil
	}
	if hasKey {
		return fmt.Errorf("faulty: %s %q (call %d): %w", method, key, n, injected)
	}
	return fmt.Errorf("faulty: %s (call %d): %w", method, n, injected)
}

// Stat implements cas.Backend.
func (f *Backend) Stat(ctx context.Context, key string) (cas.Info, error) {
	if err := f.enter(ctx, MethodStat, key, true); err != nil {
		return cas.Info{}, err
	}
	return f.inner.Stat(ctx, key)
}

// Open implements cas.Backend. With SetReadFailAfter in effect the object's
// reads fail once that many bytes have been read.
func (f *Backend) Open(ctx context.Context, key string) (cas.Object, error) {
	if err := f.enter(ctx, MethodOpen, key, true); err != nil {
		return nil, err
	}
	obj, err := f.inner.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	after, injected := f.readAfter, f.err
	f.mu.Unlock()
	if after < 0 {
		return obj, nil
	}
	return &faultObject{Object: obj, left: after, key: key, err: injected}, nil
}

// Put implements cas.Backend.
func (f *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	if err := f.enter(ctx, MethodPut, key, true); err != nil {
		return err
	}
	return f.inner.Put(ctx, key, r, size, opts)
}

// Delete implements cas.Backend.
func (f *Backend) Delete(ctx context.Context, key string) error {
	if err := f.enter(ctx, MethodDelete, key, true); err != nil {
		return err
	}
	return f.inner.Delete(ctx, key)
}

// List implements cas.Backend. A faulted List yields the error first and
// then stops.
func (f *Backend) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		if err := f.enter(ctx, MethodList, prefix, false); err != nil {
			yield(cas.Info{}, err)
			return
		}
		for info, err := range f.inner.List(ctx, prefix) {
			if !yield(info, err) {
				return
			}
		}
	}
}

// Staging returns a view of f that shares its faults and counts and also
// implements cas.Stager when the inner Backend does; otherwise it returns
// f. Faults apply to Stage, Commit and CommitEncoded (key faults to the
// committed key); a faulted commit aborts the inner staged object, so
// nothing is published. Its Staged is a cas.EncodedCommitter exactly when
// the inner one is.
func (f *Backend) Staging() cas.Backend {
	st, ok := f.inner.(cas.Stager)
	if !ok {
		return f
	}
	return &stagingFault{Backend: f, st: st}
}

type stagingFault struct {
	*Backend
	st cas.Stager
}

var _ cas.Stager = (*stagingFault)(nil)

func (s *stagingFault) Stage(ctx context.Context) (cas.Staged, error) {
	if err := s.enter(ctx, MethodStage, "", false); err != nil {
		return nil, err
	}
	obj, err := s.st.Stage(ctx)
	if err != nil {
		return nil, err
	}
	fs := &faultStaged{f: s.Backend, Staged: obj}
	if ec, ok := obj.(cas.EncodedCommitter); ok {
		return &faultEncodedStaged{faultStaged: fs, ec: ec}, nil
	}
	return fs, nil
}

// faultEncodedStaged is a faultStaged whose inner Staged commits encoded
// bytes: so does it, with faults.
type faultEncodedStaged struct {
	*faultStaged
	ec cas.EncodedCommitter
}

func (s *faultEncodedStaged) CommitEncoded(ctx context.Context, key string, opts cas.PutOptions) error {
	if err := s.f.enter(ctx, MethodCommitEncoded, key, true); err != nil {
		_ = s.Staged.Abort()
		return err
	}
	return s.ec.CommitEncoded(ctx, key, opts)
}

type faultStaged struct {
	f *Backend
	cas.Staged
}

func (s *faultStaged) Commit(ctx context.Context, key string) error {
	if err := s.f.enter(ctx, MethodCommit, key, true); err != nil {
		_ = s.Staged.Abort()
		return err
	}
	return s.Staged.Commit(ctx, key)
}

func (s *faultStaged) Abort() error {
	s.f.mu.Lock()
	s.f.calls[MethodAbort]++
	s.f.mu.Unlock()
	return s.Staged.Abort()
}

// faultObject fails its reads once left bytes have been read.
type faultObject struct {
	cas.Object
	left int64
	key  string
	err  error
}

func (o *faultObject) Read(p []byte) (int, error) {
	if o.left <= 0 {
		return 0, fmt.Errorf("faulty: read %q: %w", o.key, o.err)
	}
	if int64(len(p)) > o.left {
		p = p[:o.left]
	}
	n, err := o.Object.Read(p)
	o.left -= int64(n)
	return n, err
}
