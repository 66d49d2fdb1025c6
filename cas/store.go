package cas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"math"
	"mime"
	"os"
	"sync"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// DefaultSpoolThreshold is how many bytes Store.Put buffers in memory
// before it spools the rest of a blob to a temporary file.
const DefaultSpoolThreshold = 1 << 20

// copyBufferSize is the size of the buffer Put streams through.
const copyBufferSize = 256 << 10

// Store stores blobs under the SHA-256 of their bytes in a Backend. It is
// safe for concurrent use.
type Store struct {
	backend   Backend  // as given to New
	c         *checked // backend behind the checked layer: every call goes through it
	newHash   func() hash.Hash
	maxSize   int64
	tempDir   string
	spool     int64
	logger    *slog.Logger
	puts      metric.Int64Counter
	putBytes  metric.Int64Counter
	putErrors metric.Int64Counter
	bufs      sync.Pool // *[]byte of copyBufferSize: pipeCopy's buffers, reused across Puts
	frameBufs sync.Pool // *frameJob of the policy's chunk size: compressFrames' buffers
	putHook   func(context.Context, Hash) error
	frames    metric.Int64Counter // frames decoded by reads of compressed blobs

	compression *Compression // nil: Put stores blobs as they are
	encoder     func() (FrameEncoder, error)
	decoder     func() (*zstd.Decoder, error)
}

// Option configures a Store. An option given a value outside its
// documented range panics, naming itself and the value: a programmer
// error, caught where the Store is built.
type Option func(*Store)

// WithMaxSize limits the size of a blob. Put of a larger blob fails with
// ErrTooLarge and stores nothing. Zero means no limit (the default);
// negative panics.
func WithMaxSize(n int64) Option {
	if n < 0 {
		panic(fmt.Sprintf("cas: WithMaxSize(%d): want 0 (no limit) or a positive number of bytes", n))
	}
	return func(s *Store) { s.maxSize = n }
}

// WithTempDir sets the directory Put spools large blobs to when the Backend
// cannot stage them itself. The default is os.TempDir().
func WithTempDir(dir string) Option { return func(s *Store) { s.tempDir = dir } }

// WithSpoolThreshold sets how many bytes of a blob Put keeps in memory
// before spooling to a temporary file. The default is DefaultSpoolThreshold;
// n must be positive.
func WithSpoolThreshold(n int64) Option {
	if n <= 0 {
		panic(fmt.Sprintf("cas: WithSpoolThreshold(%d): want a positive number of bytes", n))
	}
	return func(s *Store) { s.spool = n }
}

// WithLogger sets the logger. The default, and nil, discard.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.logger = l
		}
	}
}

// WithMeterProvider sets the OpenTelemetry MeterProvider that records
// Put counts and bytes. The default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(s *Store) {
		if mp != nil {
			s.initMetrics(mp)
		}
	}
}

// WithPutHook sets a function that every Put and PutVerified call once
// the bytes are hashed and checked, and before the Store looks for the
// blob or writes it: so before every write and every deduplication. An
// error from it fails the Put, which then stores nothing. It is the seam a
// garbage collector needs (migrate.Guard's Touch records that the blob is
// about to be relied on); nil, the default, calls nothing.
func WithPutHook(fn func(ctx context.Context, h Hash) error) Option {
	return func(s *Store) { s.putHook = fn }
}

// New returns a Store over b.
func New(b Backend, opts ...Option) *Store {
	c := *checkedOf(b) // a copy: the Store's hash hook is its own
	s := &Store{backend: b, c: &c, newHash: sha256.New, spool: DefaultSpoolThreshold, logger: slog.New(slog.DiscardHandler)}
	s.initMetrics(noop.NewMeterProvider())
	for _, o := range opts {
		o(s)
	}
	// Made on first use: a Store that never meets a compressed blob
	// allocates no codec.
	s.decoder = sync.OnceValues(newDecoder)
	if p := s.compression; p != nil {
		s.encoder = sync.OnceValues(func() (FrameEncoder, error) { return newEncoder(p) })
	}
	return s
}

func (s *Store) initMetrics(mp metric.MeterProvider) {
	m := mp.Meter("github.com/casa-go/casa/cas")
	// The noop and SDK meters never fail for these static names.
	s.puts, _ = m.Int64Counter("casa.store.puts", metric.WithDescription("Completed Store.Put calls, by deduplicated."))
	s.putBytes, _ = m.Int64Counter("casa.store.put.bytes", metric.WithUnit("By"), metric.WithDescription("Bytes read by successful Store.Put calls."))
	s.putErrors, _ = m.Int64Counter("casa.store.put.errors", metric.WithDescription("Failed Store.Put calls."))
	s.frames, _ = m.Int64Counter(MetricFramesDecoded, metric.WithDescription("zstd frames (chunks) decoded by reads of compressed blobs."))
}

// MetricFramesDecoded is the name of the counter of zstd frames (chunks)
// that reads of compressed blobs decoded: a ranged read of a few bytes
// decodes one or two.
const MetricFramesDecoded = "casa.store.decode.frames"

// Backend returns the Backend the Store writes to, as given to New. The
// Store itself calls it through Checked.
func (s *Store) Backend() Backend { return s.backend }

// PutResult is the outcome of a successful Put.
type PutResult struct {
	Hash         Hash  // SHA-256 of the bytes
	Size         int64 // number of bytes
	Deduplicated bool  // the blob was already stored; nothing was written
}

// Put reads r to EOF in one pass, hashing while it spools, and stores the
// bytes under their Hash. It never holds a large blob in memory. When the
// blob is already stored nothing is uploaded and Deduplicated is true. A
// stored form that Stat reports corrupt (an error wrapping ErrCorrupt) or
// of another size than the bytes read is never "already stored": Put
// replaces it with the bytes it has just hashed, and Deduplicated is
// false, so a client that has the bytes repairs the blob. A
// blob over the maximum size fails with ErrTooLarge, and a cancelled ctx
// with ctx's error; either way nothing is stored and no temp file remains.
func (s *Store) Put(ctx context.Context, r io.Reader, opts ...PutOption) (PutResult, error) {
	return s.put(ctx, r, nil, opts)
}

// PutVerified is Put for bytes whose Hash is known in advance: when the
// bytes read from r do not hash to want it fails with ErrDigestMismatch
// and stores nothing.
func (s *Store) PutVerified(ctx context.Context, want Hash, r io.Reader, opts ...PutOption) (PutResult, error) {
	return s.put(ctx, r, &want, opts)
}

// PutOption sets an option of one Put or PutVerified.
type PutOption func(*putConfig)

type putConfig struct {
	contentType string
}

// ContentType records ct as the stored object's content type where the
// Backend keeps one (s3store: the object's Content-Type; fsstore and
// memstore keep none). Blobs are immutable and deduplicated: when the bytes
// are already stored, the stored content type stays the first writer's.
// cashttp serves the content type of the URL, never the stored one. A ct
// that mime.ParseMediaType rejects fails the Put before anything is read.
func ContentType(ct string) PutOption {
	return func(c *putConfig) { c.contentType = ct }
}

func (s *Store) put(ctx context.Context, r io.Reader, want *Hash, opts []PutOption) (PutResult, error) {
	var (
		res PutResult
		cfg putConfig
		err error
	)
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.contentType != "" {
		if _, _, perr := mime.ParseMediaType(cfg.contentType); perr != nil {
			err = fmt.Errorf("cas: put: invalid content type %q: %w", cfg.contentType, perr)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		src := contextReader(ctx, r)
		if s.maxSize > 0 && s.maxSize < math.MaxInt64 {
			// One byte more reveals a blob over the limit; at MaxInt64
			// the +1 would wrap to a negative limit that reads nothing.
			src = io.LimitReader(src, s.maxSize+1)
		}
		if s.compression != nil {
			res, err = s.putCompressible(ctx, src, want, cfg)
		} else {
			res, err = s.putRaw(ctx, src, want, cfg)
		}
	}
	if err != nil {
		s.putErrors.Add(ctx, 1)
		s.logger.DebugContext(ctx, "cas: put failed", "err", err)
		return PutResult{}, err
	}
	s.puts.Add(ctx, 1, metric.WithAttributes(attribute.Bool("deduplicated", res.Deduplicated)))
	s.putBytes.Add(ctx, res.Size)
	s.logger.DebugContext(ctx, "cas: put", "hash", res.Hash, "size", res.Size, "deduplicated", res.Deduplicated)
	return res, nil
}

// putRaw stores the bytes of src as they are.
func (s *Store) putRaw(ctx context.Context, src io.Reader, want *Hash, cfg putConfig) (PutResult, error) {
	if _, ok := s.c.b.(Stager); ok {
		return s.putStaged(ctx, src, want)
	}
	return s.putSpooled(ctx, src, want, cfg)
}

// check validates a finished read: size limit, expected digest, context.
func (s *Store) check(ctx context.Context, d hash.Hash, n int64, want *Hash) (Hash, error) {
	if s.maxSize > 0 && n > s.maxSize {
		return Hash{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.maxSize)
	}
	var h Hash
	d.Sum(h[:0])
	if want != nil && h != *want {
		return Hash{}, fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, *want, h)
	}
	return h, ctx.Err()
}

// hook runs the put hook, if any, for the blob h.
func (s *Store) hook(ctx context.Context, h Hash) error {
	if s.putHook == nil {
		return nil
	}
	if err := s.putHook(ctx, h); err != nil {
		return fmt.Errorf("cas: put %s: hook: %w", h, err)
	}
	return nil
}

// putStaged writes src into a Staged of the Backend, which must be a
// Stager, and commits it under its hash. The Store hashes the bytes: it
// stages through the checked layer's hashed route, which checks the key
// and context of the Commit but does not hash them again.
func (s *Store) putStaged(ctx context.Context, src io.Reader, want *Hash) (res PutResult, err error) {
	obj, err := s.c.stage(ctx, true)
	if err != nil {
		return res, fmt.Errorf("cas: stage: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = obj.Abort()
		}
	}()
	d := s.newHash()
	n, err := pipeCopy(obj, d, src, &s.bufs)
	if err != nil {
		return res, fmt.Errorf("cas: put: %w", err)
	}
	h, err := s.check(ctx, d, n, want)
	if err != nil {
		return res, err
	}
	committed = true
	return s.commitStaged(ctx, PutResult{Hash: h, Size: n}, obj,
		func() error { return obj.Commit(ctx, h.Key()) },
		func() error { return s.replaceStaged(ctx, h, obj) })
}

// commitStaged finishes a staged Put of the blob res describes, whose
// bytes obj holds: the put hook, then the dedup check (lookup) decides,
// while the staged bytes can still go anywhere (a Staged is finished by
// its Commit, so a Commit that fails with ErrExists could not be followed
// by a repair). Stored: obj is aborted, the Put deduplicated (sparing a
// duplicate the final fdatasync and link of a Commit). Corrupt: replace
// publishes obj over it. Absent: commit publishes obj create-only, and
// ErrExists from a concurrent writer is confirmed. One Stat (fsstore: one
// Lstat) costs a new blob next to nothing. obj is finished when it
// returns.
func (s *Store) commitStaged(ctx context.Context, res PutResult, obj Staged, commit, replace func() error) (PutResult, error) {
	if err := s.hook(ctx, res.Hash); err != nil {
		_ = obj.Abort()
		return PutResult{}, err
	}
	found, err := s.lookup(ctx, res, true)
	switch {
	case err != nil:
		_ = obj.Abort()
		return PutResult{}, err
	case found == blobStored:
		_ = obj.Abort()
		res.Deduplicated = true
		return res, nil
	case found == blobCorrupt:
		err := replace()
		switch {
		case errors.Is(err, ErrExists):
			return s.confirm(ctx, res, err) // a concurrent repair
		case err != nil:
			return PutResult{}, fmt.Errorf("cas: put %s: replace its corrupt stored form: %w", res.Hash, err)
		}
		return res, nil
	}
	err = commit()
	switch {
	case errors.Is(err, ErrExists):
		// A concurrent writer stored it since the Stat.
		return s.confirm(ctx, res, err)
	case err != nil:
		return PutResult{}, fmt.Errorf("cas: put %s: %w", res.Hash, err)
	}
	return res, nil
}

// replaceStaged publishes the staged bytes of obj over the corrupt stored
// form of the blob h: with CommitReplace where the Backend's Staged has it
// (atomic), otherwise by a Delete and a create-only Commit (ErrExists
// then: a concurrent repair, which the caller confirms).
func (s *Store) replaceStaged(ctx context.Context, h Hash, obj Staged) error {
	if r, ok := obj.(StagedReplacer); ok {
		return r.CommitReplace(ctx, h.Key())
	}
	if err := s.c.Delete(ctx, h.Key()); err != nil {
		_ = obj.Abort()
		return fmt.Errorf("delete it: %w", err)
	}
	return obj.Commit(ctx, h.Key())
}

// confirm is the outcome of a Put whose create-only write failed with
// exists (ErrExists): a concurrent writer stored the blob. It makes sure
// the blob is really there, and sound: S3 also answers a create-only
// write with 409 when a concurrent delete or failed upload of the key
// interfered. The errors it returns do not wrap ErrExists, which would
// read as success.
func (s *Store) confirm(ctx context.Context, res PutResult, exists error) (PutResult, error) {
	h := res.Hash
	found, err := s.lookup(ctx, res, false)
	switch {
	case err != nil:
		return PutResult{}, fmt.Errorf("cas: put %s: reported as existing (%v), then: %w", h, exists, err)
	case found == blobAbsent:
		return PutResult{}, fmt.Errorf("cas: put %s: reported as existing, but not stored; retry: %v", h, exists)
	case found == blobCorrupt:
		return PutResult{}, fmt.Errorf("cas: put %s: stored meanwhile by another writer, in a form that is corrupt; retry (a Put replaces it): %v", h, exists)
	}
	res.Deduplicated = true
	return res, nil
}

// presence is what the dedup check of a Put found under a blob's key.
type presence int

const (
	blobAbsent  presence = iota // nothing: write create-only
	blobStored                  // the blob, in either form: deduplicated
	blobCorrupt                 // a stored form that cannot be the blob: replace it
)

// lookup is the dedup check of a Put of the blob res describes, whose
// bytes the Store has just hashed: one Stat of its key. A stored form that
// Stat reports corrupt (ErrCorrupt: a compressed blob's unreadable seek
// table on fsstore, a damaged encoding marker on S3), or whose size is not
// the size of the bytes just hashed (so they cannot hash to the key), is
// corrupt: never "already stored", the Put replaces it with its bytes.
// Damage that Stat cannot see (a frame of a compressed blob, a flipped bit
// of a plain one) is Verify's to find. A corrupt form is logged as being
// replaced when repair is set (the caller replaces it), else as left for
// a retry (confirm, which replaces nothing).
func (s *Store) lookup(ctx context.Context, res PutResult, repair bool) (presence, error) {
	msg, sizeMsg := "cas: put: replacing a corrupt stored blob", "cas: put: replacing a stored blob of the wrong size"
	if !repair {
		msg = "cas: put: a concurrent writer stored a corrupt form; not replaced, the Put fails (retryable)"
		sizeMsg = msg
	}
	info, err := s.c.Stat(ctx, res.Hash.Key())
	switch {
	case err == nil && info.Size == res.Size:
		return blobStored, nil
	case err == nil:
		s.logger.WarnContext(ctx, sizeMsg, "hash", res.Hash, "stored_size", info.Size, "encoding", info.Encoding, "size", res.Size)
		return blobCorrupt, nil
	case errors.Is(err, ErrNotFound):
		return blobAbsent, nil
	case errors.Is(err, ErrCorrupt):
		s.logger.WarnContext(ctx, msg, "hash", res.Hash, "err", err)
		return blobCorrupt, nil
	}
	return blobAbsent, fmt.Errorf("cas: put %s: %w", res.Hash, err)
}

func (s *Store) putSpooled(ctx context.Context, src io.Reader, want *Hash, cfg putConfig) (res PutResult, err error) {
	d := s.newHash()
	tee := io.TeeReader(src, d)
	var mem bytes.Buffer
	// One byte past the threshold tells a blob of exactly the threshold
	// (kept in memory) from a larger one (spooled).
	n, err := mem.ReadFrom(io.LimitReader(tee, min(s.spool, math.MaxInt64-1)+1))
	if err != nil {
		return res, fmt.Errorf("cas: put: %w", err)
	}
	body := io.ReadSeeker(bytes.NewReader(mem.Bytes()))
	if n > s.spool {
		f, err := os.CreateTemp(s.tempDir, "casa-spool-*")
		if err != nil {
			return res, fmt.Errorf("cas: spool: %w", err)
		}
		defer func() {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}()
		if _, err := f.Write(mem.Bytes()); err != nil {
			return res, fmt.Errorf("cas: spool: %w", err)
		}
		mem = bytes.Buffer{}
		m, err := io.CopyBuffer(onlyWriter{f}, tee, make([]byte, copyBufferSize))
		n += m
		if err != nil {
			return res, fmt.Errorf("cas: put: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return res, fmt.Errorf("cas: spool: %w", err)
		}
		body = f
	}
	h, err := s.check(ctx, d, n, want)
	if err != nil {
		return res, err
	}
	// The bytes are hashed already: the checked layer checks their size,
	// and the Backend forwards h where it can, without hashing again.
	return s.upload(ctx, PutResult{Hash: h, Size: n}, body, n, PutOptions{SHA256: h, IfAbsent: true, ContentType: cfg.contentType})
}

// upload writes the spooled body of storedSize bytes, the stored form of
// the blob res describes, create-only under its key, unless the blob is
// stored already (in any form). A stored form that is corrupt (see lookup)
// is replaced by a write without IfAbsent, and the Put is not
// Deduplicated.
func (s *Store) upload(ctx context.Context, res PutResult, body io.ReadSeeker, storedSize int64, opts PutOptions) (PutResult, error) {
	h := res.Hash
	if err := s.hook(ctx, h); err != nil {
		return PutResult{}, err
	}
	found, err := s.lookup(ctx, res, true)
	switch {
	case err != nil:
		return PutResult{}, err
	case found == blobStored:
		res.Deduplicated = true
		return res, nil
	case found == blobCorrupt:
		return s.replace(ctx, res, body, storedSize, opts)
	}
	err = s.c.put(ctx, h.Key(), body, storedSize, opts, true)
	switch {
	case errors.Is(err, ErrExists):
		// A concurrent writer won.
		return s.confirm(ctx, res, err)
	case err != nil:
		return PutResult{}, fmt.Errorf("cas: put %s: %w", h, err)
	}
	return res, nil
}

// replace writes body, the stored form of the blob res describes, over a
// corrupt stored form of it: a write without IfAbsent, which replaces
// either form atomically (two Puts repairing at once both write the same
// blob; the last one stays).
func (s *Store) replace(ctx context.Context, res PutResult, body io.ReadSeeker, storedSize int64, opts PutOptions) (PutResult, error) {
	opts.IfAbsent = false
	if err := s.c.put(ctx, res.Hash.Key(), body, storedSize, opts, true); err != nil {
		return PutResult{}, fmt.Errorf("cas: put %s: replace its corrupt stored form: %w", res.Hash, err)
	}
	return res, nil
}

// Touch runs the put hook (WithPutHook) for the blob h, as a Put that
// finds h stored does, and returns its error; without a hook it does
// nothing. Call it before telling a client that h is already stored (an
// upload protocol's HEAD or batch answer), so that the hook's guard keeps
// the blob from a garbage collector until the client's record commits.
func (s *Store) Touch(ctx context.Context, h Hash) error { return s.hook(ctx, h) }

// Open opens the blob named h, or returns an error wrapping ErrNotFound.
//
// A blob stored compressed (Info().Encoding is EncodingZstd) reads as its
// uncompressed bytes: Seek reads nothing, and a read decompresses only the
// chunks it touches. Its Object is an EncodedObject, whose Stored reads the
// stored bytes. A corrupt or truncated compressed blob fails reads with an
// error wrapping ErrCorrupt, never with wrong bytes; a blob stored in an
// encoding this Store does not know fails Open with one wrapping
// ErrUnsupported.
func (s *Store) Open(ctx context.Context, h Hash) (Object, error) {
	obj, err := s.c.Open(ctx, h.Key())
	if err != nil {
		return nil, err
	}
	info := obj.Info()
	switch info.Encoding {
	case "":
		return obj, nil
	case EncodingZstd:
		dec, err := s.decoder()
		if err != nil {
			_ = obj.Close()
			return nil, fmt.Errorf("cas: open %s: %w", h, err)
		}
		return &zstdObject{raw: obj, info: info, dec: dec, frame: -1, decode: func() { s.frames.Add(ctx, 1) }}, nil
	}
	_ = obj.Close()
	return nil, fmt.Errorf("cas: open %s: %w: stored in encoding %q", h, ErrUnsupported, info.Encoding)
}

// Stat describes the blob named h, or returns an error wrapping ErrNotFound.
func (s *Store) Stat(ctx context.Context, h Hash) (Info, error) {
	return s.c.Stat(ctx, h.Key())
}

// Has reports whether the blob named h is stored. A blob whose stored form
// Stat reports corrupt is stored but unreadable: Has returns Stat's error,
// which wraps ErrCorrupt, not false. A Put of the blob's bytes replaces
// such a stored form (see Put).
func (s *Store) Has(ctx context.Context, h Hash) (bool, error) {
	_, err := s.c.Stat(ctx, h.Key())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Verify re-reads the blob named h and re-hashes it. It returns an error
// wrapping ErrDigestMismatch when the stored bytes no longer hash to h
// (bit rot, tampering) and ErrNotFound when the blob is missing. A blob
// stored compressed is hashed decoded; when it no longer decodes (a
// corrupt or truncated frame or seek table) the error wraps both
// ErrDigestMismatch and ErrCorrupt.
func (s *Store) Verify(ctx context.Context, h Hash) error {
	obj, err := s.Open(ctx, h)
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("cas: verify %s: %w: %w", h, ErrDigestMismatch, err)
	}
	if err != nil {
		return err
	}
	defer obj.Close()
	got, _, err := Sum(contextReader(ctx, obj))
	if errors.Is(err, ErrCorrupt) {
		// A compressed blob that no longer decodes holds wrong bytes too.
		return fmt.Errorf("cas: verify %s: %w: %w", h, ErrDigestMismatch, err)
	}
	if err != nil {
		return fmt.Errorf("cas: verify %s: %w", h, err)
	}
	if got != h {
		return fmt.Errorf("%w: %s holds bytes hashing to %s", ErrDigestMismatch, h, got)
	}
	return nil
}

// Delete removes the blob named h. Deleting a missing blob is not an error.
func (s *Store) Delete(ctx context.Context, h Hash) error {
	return s.c.Delete(ctx, h.Key())
}

// Walk yields every blob in the Store: the Backend's CAS keys only; legacy
// keys and derived data (such as thumbnails/) are skipped.
func (s *Store) Walk(ctx context.Context) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		for info, err := range s.c.List(ctx, KeyPrefix) {
			if err != nil {
				yield(Info{}, err)
				return
			}
			if !IsKey(info.Key) {
				continue
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// pipeBuffers is how many copyBufferSize buffers pipeCopy keeps in flight.
const pipeBuffers = 8

// pipeCopy copies src to w until EOF and hashes the bytes into d in a
// three-stage pipeline: the calling goroutine reads chunks from src, a
// second one hashes each, and a third writes it to w after it is hashed,
// while the next is hashed. Hashing is the slowest of the three on the
// CPU, so it does nothing else: a Put takes about as long as the slower of
// hashing and w (reading src in the hashing goroutine, as one copy of the
// blob more, would make a Put slower than both). Buffers are allocated as
// needed, or taken from pool, and go back to pool at the end, so a small
// blob costs one and the Puts of a Store share them. It returns once w has
// seen its last Write and d its last byte.
func pipeCopy(w io.Writer, d hash.Hash, src io.Reader, pool *sync.Pool) (int64, error) {
	var (
		free   = make(chan []byte, pipeBuffers)
		hashq  = make(chan []byte, pipeBuffers) // read, to hash
		writeq = make(chan []byte, pipeBuffers) // hashed, to write
		failed = make(chan struct{})            // closed when a Write fails
		werr   error
		done   = make(chan struct{}) // closed when the last buffer is written
		n      int64
		rerr   error
		made   int
	)
	go func() {
		defer close(writeq)
		for b := range hashq {
			d.Write(b)
			writeq <- b
		}
	}()
	go func() {
		defer close(done)
		for b := range writeq {
			if werr == nil {
				if _, werr = w.Write(b); werr != nil {
					close(failed)
				}
			}
			free <- b[:cap(b)]
		}
	}()
loop:
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-failed:
			break loop
		default:
			if made < pipeBuffers {
				made++
				if p, ok := pool.Get().(*[]byte); ok {
					buf = *p
				} else {
					buf = make([]byte, copyBufferSize)
				}
				break
			}
			select {
			case buf = <-free:
			case <-failed:
				break loop
			}
		}
		m, err := src.Read(buf)
		if m > 0 {
			n += int64(m)
			hashq <- buf[:m]
		} else {
			free <- buf
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(hashq)
	<-done
	// Every buffer is back in free: w and d are done with them.
	for range made {
		b := <-free
		pool.Put(&b)
	}
	if rerr != nil {
		return n, rerr
	}
	return n, werr
}

// contextReader returns a Reader that reads from r until ctx is done and
// then fails every Read with ctx's error: a long copy from a reader that
// knows no context stops when the context is cancelled.
func contextReader(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

// ctxReader fails reads once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// onlyWriter hides ReadFrom so that io.CopyBuffer uses the given buffer.
type onlyWriter struct{ io.Writer }
