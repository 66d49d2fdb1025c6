// Package s3store is a cas.Backend on Amazon S3 and S3-compatible services
// (MinIO, Cloudflare R2, Ceph RGW, gofakes3), built on aws-sdk-go-v2.
//
// Each Backend call maps to S3 API calls:
//
//   - Stat: HeadObject.
//   - Open: HeadObject for the size, then a ranged GetObject
//     ("Range: bytes=<offset>-") on the first Read after Open or a Seek, so a
//     Seek never transfers data and Seek+Read fetches only what is read.
//   - Put: PutObject with ContentLength, ContentType, ChecksumSHA256 (when
//     PutOptions.SHA256 is set, so S3 rejects bytes that do not hash to it)
//     and If-None-Match "*" (for PutOptions.IfAbsent). Above the multipart
//     threshold, a multipart upload whose parts carry their own
//     ChecksumCRC32C (S3 keeps no whole-object SHA-256 of a multipart
//     upload; the checked layer verifies the digest as the parts are
//     read), are sent concurrently, and are completed with If-None-Match
//     "*"; any failure aborts the upload.
//   - Delete: DeleteObject.
//   - List: ListObjectsV2, page by page, and a HeadObject per blob key
//     (cas/<hex>) for its encoding and decoded size, 8 at a time
//     (WithListConcurrency). ListKeys (cas.KeyLister): ListObjectsV2 alone.
//
// # Building a client
//
// New takes a ready *s3.Client. For AWS S3 the defaults work:
//
//	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("eu-central-1"))
//	client := s3.NewFromConfig(cfg)
//
// For an S3-compatible service, point the client at its endpoint, use
// path-style addressing where the service needs it, and send and validate
// checksums only when an operation requires them (several services reject
// the SDK's default trailing CRC checksums):
//
//	cfg, err := config.LoadDefaultConfig(ctx,
//		config.WithRegion("us-east-1"), // R2: "auto"
//		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, secret, "")),
//		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
//		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
//	)
//	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
//		o.BaseEndpoint = aws.String("http://minio:9000") // R2: https://<account>.r2.cloudflarestorage.com
//		o.UsePathStyle = true                            // MinIO, gofakes3; R2 accepts both
//	})
//
// Conditional writes (If-None-Match "*") are supported by AWS S3 (since
// 2024), current MinIO and R2. For a service that ignores or rejects them,
// use WithoutConditionalWrites.
//
// # Timeouts
//
// Every S3 call is bounded, so that a hung service (connections accepted,
// no answers) fails calls instead of hanging them:
//
//   - A metadata call (HeadObject, a ListObjectsV2 page, DeleteObject,
//     Create/AbortMultipartUpload) fails after the operation timeout
//     (WithOpTimeout, 10 s), which covers all of the SDK's retries; each
//     attempt has its own, shorter, timeout (WithAttemptTimeout, 4 s)
//     after which the SDK's retryer tries again on a new connection.
//   - CompleteMultipartUpload, during which S3 assembles the parts (minutes
//     for a large object, with no byte moving), fails after the complete
//     timeout (WithCompleteTimeout, 5 min, or the operation timeout if
//     that is longer), retries included, with no per-attempt timeout.
//   - A transfer fails after the stall timeout (WithStallTimeout, 30 s)
//     without progress: a PutObject or UploadPart whose body is not read
//     and that gets no answer, or a GetObject body Read that gets no byte.
//     Every byte moved starts the period again, so a transfer of any size
//     that keeps moving never times out. A GetObject's response headers
//     must come within the operation timeout. The stall watchdog of a GET
//     runs only while a Read waits for S3, so a slow reader is no stall.
//
// A call that times out returns an error wrapping cas.ErrUnavailable and
// context.DeadlineExceeded, whose text names the S3 operation, the bucket
// and the key ("s3store: HeadObject bucket/key: no answer in 10s: ...").
// When the caller's own context ends first, the error wraps that context's
// error instead, as before. A multipart upload that fails is aborted under
// a fresh operation timeout; if the abort fails too (the service is still
// hung) the error says which upload was left open: an S3 lifecycle rule
// (AbortIncompleteMultipartUpload) removes it.
//
// An Object's Read and Seek are for one goroutine at a time, but its Close
// is safe at any time: it ends a GetObject in flight, and a Read blocked
// in another goroutine returns an error at once.
package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/keylock"
)

// Defaults of the multipart upload options.
const (
	// DefaultMultipartThreshold is the size above which Put uses a
	// multipart upload.
	DefaultMultipartThreshold = 64 << 20
	// DefaultPartSize is the size of each part of a multipart upload.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is how many parts of one upload are sent at once.
	DefaultConcurrency = 4
	// DefaultListConcurrency is how many HeadObject calls List keeps in
	// flight (see List). It stays below the 10 idle connections per host
	// that the SDK's HTTP client keeps, so the HEADs reuse connections
	// instead of opening (and on AWS, TLS-handshaking) new ones; with a
	// client whose transport keeps more, WithListConcurrency can go higher.
	DefaultListConcurrency = 8
)

// S3 limits.
const (
	maxParts     = 10000
	maxKeyLength = 1024
	minPartSize  = 1
)

// Backend is a cas.Backend on one S3 bucket. It is safe for concurrent use.
type Backend struct {
	client      *s3.Client
	bucket      string
	prefix      string
	threshold   int64
	partSize    int64
	concurrency int
	listConc    int // HeadObject calls in flight in List
	conditional bool
	locks       keylock.Set // create-only writers without conditional writes

	opTimeout       time.Duration
	attemptTimeout  time.Duration
	stallTimeout    time.Duration
	completeTimeout time.Duration
}

var (
	_ cas.Backend   = (*Backend)(nil)
	_ cas.KeyLister = (*Backend)(nil)
)

// Option configures a Backend.
type Option func(*Backend)

// WithKeyPrefix stores every key under prefix p inside the bucket, so that
// several applications can share one bucket: key "cas/<hex>" is stored as
// p+"cas/<hex>". List strips p again. Include a trailing "/" if you want one.
func WithKeyPrefix(p string) Option { return func(b *Backend) { b.prefix = p } }

// WithMultipartThreshold sets the size above which Put uses a multipart
// upload; the default is DefaultMultipartThreshold. Blobs of unknown size
// (size < 0) that exceed one part are always uploaded in parts.
//
// A negative n panics, naming the option (a programmer error).
func WithMultipartThreshold(n int64) Option {
	if n < 0 {
		badOption("WithMultipartThreshold", n, "want 0 or more bytes")
	}
	return func(b *Backend) { b.threshold = n }
}

// WithPartSize sets the size of the parts of a multipart upload; the default
// is DefaultPartSize. AWS S3 requires at least 5 MiB for every part but the
// last; smaller sizes are accepted here for services and tests that allow
// them. Put raises the part size when a blob would need more than 10,000
// parts. Memory per upload is bounded by part size times concurrency.
//
// An n below 1 panics, naming the option (a programmer error).
func WithPartSize(n int64) Option {
	if n < minPartSize {
		badOption("WithPartSize", n, fmt.Sprintf("want at least %d bytes", minPartSize))
	}
	return func(b *Backend) { b.partSize = n }
}

// WithConcurrency sets how many parts of one multipart upload are sent at
// once; the default is DefaultConcurrency. n below 1 panics, naming the
// option (a programmer error).
func WithConcurrency(n int) Option {
	if n < 1 {
		badOption("WithConcurrency", n, "want at least 1")
	}
	return func(b *Backend) { b.concurrency = n }
}

// WithListConcurrency sets how many HeadObject calls List keeps in flight
// to describe the blobs of a page (see List); the default is
// DefaultListConcurrency. 1 issues them one at a time. n below 1 panics,
// naming the option (a programmer error).
func WithListConcurrency(n int) Option {
	if n < 1 {
		badOption("WithListConcurrency", n, "want at least 1")
	}
	return func(b *Backend) { b.listConc = n }
}

// badOption panics for an option given a nonsense value: a programmer
// error, caught where the Backend is built.
func badOption(name string, v any, want string) {
	panic(fmt.Sprintf("s3store: %s(%v): %s", name, v, want))
}

// WithoutConditionalWrites is for S3-compatible services that do not
// support If-None-Match on PutObject and CompleteMultipartUpload. Put with
// PutOptions.IfAbsent then checks with HeadObject before it writes, holding
// a per-key lock so that create-only writers in this process (of this
// Backend) are serialised. Across processes the check races: two concurrent
// create-only writers of one key may both succeed, the later one replacing
// the earlier. For content-addressed keys this is harmless (both write the
// same bytes); for other keys it is not.
func WithoutConditionalWrites() Option { return func(b *Backend) { b.conditional = false } }

// New returns a Backend that stores objects in bucket through client.
func New(client *s3.Client, bucket string, opts ...Option) *Backend {
	b := &Backend{
		client:      client,
		bucket:      bucket,
		threshold:   DefaultMultipartThreshold,
		partSize:    DefaultPartSize,
		concurrency: DefaultConcurrency,
		listConc:    DefaultListConcurrency,
		conditional: true,

		opTimeout:       DefaultOpTimeout,
		attemptTimeout:  DefaultAttemptTimeout,
		stallTimeout:    DefaultStallTimeout,
		completeTimeout: DefaultCompleteTimeout,
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// objectKey maps a Backend key to an S3 key. Keys are the checked layer's
// (cas.CheckKey); only the bucket prefix can push one past S3's limit.
func (b *Backend) objectKey(key string) (string, error) {
	full := b.prefix + key
	if len(full) > maxKeyLength {
		return "", fmt.Errorf("s3store: key %.40q...: with the prefix, longer than %d bytes: %w", key, maxKeyLength, cas.ErrInvalidKey)
	}
	return full, nil
}

// classify maps an S3 error to the cas sentinel it means, or nil.
func classify(err error) error {
	var (
		nf  *types.NotFound
		nsk *types.NoSuchKey
		ae  smithy.APIError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf), errors.As(err, &nsk):
		return cas.ErrNotFound
	case errors.As(err, &ae):
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return cas.ErrNotFound
		case "PreconditionFailed", "ConditionalRequestConflict":
			return cas.ErrExists
		case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest":
			return cas.ErrDigestMismatch
		case "NoSuchBucket", "NoSuchUpload":
			return nil
		case "InvalidURI", "KeyTooLongError", "InvalidObjectName":
			return cas.ErrInvalidKey
		}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case 400:
			// On a call about one key, a plain 400 (a HEAD has no body
			// to say more) is the service refusing to address that key:
			// SeaweedFS answers "a/../b" so. Callers add it only where
			// they ask for cas.ErrInvalidKey.
			return cas.ErrInvalidKey
		case 404:
			return cas.ErrNotFound
		case 412:
			return cas.ErrExists
		}
	}
	return nil
}

// wrap annotates err, adding the sentinel it maps to when that sentinel is
// one of want.
func wrap(op, key string, err error, want ...error) error {
	if s := classify(err); s != nil {
		for _, w := range want {
			if s == w {
				return fmt.Errorf("s3store: %s %q: %w: %w", op, key, s, err)
			}
		}
	}
	return fmt.Errorf("s3store: %s %q: %w", op, key, err)
}

// Stat implements cas.Backend with HeadObject.
func (b *Backend) Stat(ctx context.Context, key string) (cas.Info, error) {
	full, err := b.objectKey(key)
	if err != nil {
		return cas.Info{}, err
	}
	c := b.meta(ctx, "HeadObject", full)
	defer c.end()
	out, err := b.client.HeadObject(c.ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &full}, c.withAttemptTimeout)
	if err != nil {
		return cas.Info{}, c.err("stat", key, err, cas.ErrNotFound, cas.ErrInvalidKey)
	}
	return headInfo(key, out)
}

// Object metadata (x-amz-meta-*) that marks a blob stored encoded: the
// encoding and the decoded size. The marker is never guessed from the
// bytes.
const (
	metaEncoding    = "casa-encoding"
	metaDecodedSize = "casa-decoded-size"
)

// encodingMetadata returns the metadata that records opts's encoding, or
// nil.
func encodingMetadata(opts cas.PutOptions) map[string]string {
	if opts.Encoding == "" {
		return nil
	}
	return map[string]string{metaEncoding: opts.Encoding, metaDecodedSize: strconv.FormatInt(opts.DecodedSize, 10)}
}

// headInfo describes the object key from its HeadObject answer.
func headInfo(key string, out *s3.HeadObjectOutput) (cas.Info, error) {
	n := aws.ToInt64(out.ContentLength)
	info := cas.Info{Key: key, Size: n, ModTime: aws.ToTime(out.LastModified), StoredSize: n}
	var enc, size string
	for k, v := range out.Metadata {
		switch strings.ToLower(k) {
		case metaEncoding:
			enc = v
		case metaDecodedSize:
			size = v
		}
	}
	if enc == "" {
		return info, nil
	}
	d, err := strconv.ParseInt(size, 10, 64)
	if err != nil || d < 0 {
		return cas.Info{}, fmt.Errorf("s3store: %q: %w: stored %s with decoded size %q", key, cas.ErrCorrupt, enc, size)
	}
	info.Encoding, info.Size = enc, d
	return info, nil
}

// Open implements cas.Backend. It issues a HeadObject; data is fetched with
// ranged GetObject calls as it is read, under ctx, so ctx must stay live
// while the Object is in use. The Object's Read and Seek are not safe for
// concurrent use; its Close is, and ends a Read blocked in another
// goroutine.
func (b *Backend) Open(ctx context.Context, key string) (cas.Object, error) {
	full, err := b.objectKey(key)
	if err != nil {
		return nil, err
	}
	c := b.meta(ctx, "HeadObject", full)
	defer c.end()
	out, err := b.client.HeadObject(c.ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &full}, c.withAttemptTimeout)
	if err != nil {
		return nil, c.err("open", key, err, cas.ErrNotFound, cas.ErrInvalidKey)
	}
	info, err := headInfo(key, out)
	if err != nil {
		return nil, err
	}
	return &object{ctx: ctx, b: b, full: full, info: info, etag: aws.ToString(out.ETag)}, nil
}

// Delete implements cas.Backend with DeleteObject. A missing key is not an
// error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	full, err := b.objectKey(key)
	if err != nil {
		return err
	}
	c := b.meta(ctx, "DeleteObject", full)
	defer c.end()
	_, err = b.client.DeleteObject(c.ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &full}, c.withAttemptTimeout)
	if err != nil && classify(err) != cas.ErrNotFound {
		return c.err("delete", key, err, cas.ErrInvalidKey)
	}
	return nil
}

// List implements cas.Backend with ListObjectsV2, one page of up to 1000
// keys at a time, in S3's lexical (UTF-8 byte) order. It stops fetching
// pages when the caller breaks; an error is yielded once and ends the
// iteration.
//
// ListObjectsV2 returns no object metadata, so only a HeadObject tells
// whether a blob (a key cas/<hex>) is stored encoded and its decoded size.
// List issues those HEADs concurrently, up to the list concurrency
// (WithListConcurrency) ahead of the object it yields, each under the
// operation timeout, and yields the objects in order; a blob deleted
// between the listing and its HEAD is skipped. When the caller breaks, the
// HEADs in flight are cancelled and waited for. A caller that needs no
// decoded sizes lists without any HEAD through ListKeys (cas.ListKeys).
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		for page, err := range b.pages(ctx, prefix) {
			if err != nil {
				yield(cas.Info{}, err)
				return
			}
			if !b.statPage(ctx, page, yield) {
				return
			}
		}
	}
}

// ListKeys implements cas.KeyLister with ListObjectsV2 alone: one request
// per 1000 keys, no HeadObject.
func (b *Backend) ListKeys(ctx context.Context, prefix string) iter.Seq2[cas.KeyInfo, error] {
	return func(yield func(cas.KeyInfo, error) bool) {
		for page, err := range b.pages(ctx, prefix) {
			if err != nil {
				yield(cas.KeyInfo{}, err)
				return
			}
			for _, o := range page {
				if !yield(cas.KeyInfo{Key: o.Key, ModTime: o.ModTime, StoredSize: o.StoredSize}, nil) {
					return
				}
			}
		}
	}
}

// pages yields the ListObjectsV2 pages of the keys under prefix, each as
// the Infos the listing alone gives (Size = StoredSize: the bytes held),
// keys without the Backend's prefix. An error is yielded once and ends the
// iteration.
func (b *Backend) pages(ctx context.Context, prefix string) iter.Seq2[[]cas.Info, error] {
	return func(yield func([]cas.Info, error) bool) {
		in := &s3.ListObjectsV2Input{Bucket: &b.bucket}
		if p := b.prefix + prefix; p != "" {
			in.Prefix = aws.String(p)
		}
		pages := s3.NewListObjectsV2Paginator(b.client, in)
		for pages.HasMorePages() {
			c := b.meta(ctx, "ListObjectsV2", aws.ToString(in.Prefix))
			page, err := pages.NextPage(c.ctx, c.withAttemptTimeout)
			if err != nil {
				err = c.err("list", prefix, err)
				c.end()
				yield(nil, err)
				return
			}
			c.end()
			infos := make([]cas.Info, 0, len(page.Contents))
			for _, o := range page.Contents {
				key, ok := strings.CutPrefix(aws.ToString(o.Key), b.prefix)
				if !ok {
					continue
				}
				n := aws.ToInt64(o.Size)
				infos = append(infos, cas.Info{Key: key, Size: n, ModTime: aws.ToTime(o.LastModified), StoredSize: n})
			}
			if !yield(infos, nil) {
				return
			}
		}
	}
}

// statPage yields the objects of one listed page in order, each blob key
// described by its HeadObject (Stat), up to b.listConc HEADs in
// flight ahead of the object being yielded. It reports false when the
// iteration ends: the caller broke, or an error was yielded. No HEAD
// outlives it: on return the ones in flight are cancelled and waited for.
func (b *Backend) statPage(ctx context.Context, page []cas.Info, yield func(cas.Info, error) bool) bool {
	type result struct {
		info cas.Info
		err  error
	}
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	results := make([]chan result, len(page))
	next, pending := 0, 0 // the next object to look at; HEADs started and not yet yielded
	for i, info := range page {
		// Keep up to listConcurrency HEADs going ahead of i; item i
		// itself is among them (pending < n while next <= i).
		for next < len(page) && pending < b.listConc {
			if key := page[next].Key; cas.IsKey(key) {
				ch := make(chan result, 1)
				results[next] = ch
				pending++
				wg.Add(1)
				go func() {
					defer wg.Done()
					info, err := b.Stat(hctx, key)
					ch <- result{info, err}
				}()
			}
			next++
		}
		if ch := results[i]; ch != nil {
			r := <-ch
			pending--
			results[i] = nil
			switch {
			case errors.Is(r.err, cas.ErrNotFound):
				continue // deleted while listing
			case r.err != nil:
				if !errors.Is(r.err, cas.ErrUnavailable) { // a timeout's text names the bucket already
					r.err = fmt.Errorf("s3store: list bucket %s: %w", b.bucket, r.err)
				}
				yield(cas.Info{}, r.err)
				return false
			}
			info = r.info
		}
		if !yield(info, nil) {
			return false
		}
	}
	return true
}

// Put implements cas.Backend. r yields size bytes (the checked layer,
// cas.Checked, makes sure of it); when r fails, nothing is stored. A
// negative size means unknown: the blob is read to EOF, in parts when it
// exceeds one part (then the part size is not raised for S3's limit of
// 10,000 parts, and memory is bounded by one part more than concurrency x
// part size).
//
// Blobs up to the multipart threshold go up in one PutObject, streamed
// from r. When r is an io.ReadSeeker the request can be retried. A known
// opts.SHA256 is sent as x-amz-checksum-sha256, so S3 verifies the bytes
// without anyone hashing them again: the SDK computes no checksum of its
// own when one is set, and the SigV4 payload hash is skipped
// (UNSIGNED-PAYLOAD). The payload hash is skipped too when r cannot be
// rewound; such a request is not retried. Blobs above the threshold go up
// in parts, each with its own CRC32C (S3 keeps no whole-object SHA-256 of
// a multipart upload); the checked layer verifies opts.SHA256 as the parts
// are read, and a mismatch fails the read of the last part, which aborts
// the upload.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	full, err := b.objectKey(key)
	if err != nil {
		return err
	}
	if opts.IfAbsent && !b.conditional {
		// Racy across processes: see WithoutConditionalWrites.
		unlock := b.locks.Lock(full)
		defer unlock()
		c := b.meta(ctx, "HeadObject", full)
		_, err := b.client.HeadObject(c.ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &full}, c.withAttemptTimeout)
		err = c.err("put", key, err, cas.ErrInvalidKey)
		c.end()
		switch {
		case err == nil:
			return fmt.Errorf("s3store: put %q: %w", key, cas.ErrExists)
		case classify(err) != cas.ErrNotFound:
			return err
		}
	}
	if size < 0 {
		// Unknown size: read one part; a short read fits a single PutObject.
		buf := make([]byte, b.partSize)
		n, err := io.ReadFull(r, buf)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return b.putSingle(ctx, key, full, bytes.NewReader(buf[:n]), int64(n), opts)
		case err != nil:
			return fmt.Errorf("s3store: put %q: read: %w", key, err)
		}
		return b.putMultipart(ctx, key, full, io.MultiReader(bytes.NewReader(buf), r), -1, opts)
	}
	if size > b.threshold && size > 0 {
		return b.putMultipart(ctx, key, full, r, size, opts)
	}
	return b.putSingle(ctx, key, full, r, size, opts)
}

// unsignedPayload sends "x-amz-content-sha256: UNSIGNED-PAYLOAD" instead
// of hashing the body for the SigV4 signature. Put uses it when the body
// cannot be rewound, and when an x-amz-checksum-sha256 already protects
// the bytes (then hashing again would only cost a second pass).
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

func checksum(h cas.Hash) *string {
	return aws.String(base64.StdEncoding.EncodeToString(h[:]))
}

func (b *Backend) putSingle(ctx context.Context, key, full string, r io.Reader, size int64, opts cas.PutOptions) error {
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           &full,
		ContentLength: aws.Int64(size),
	}
	// The PutObject fails once its body has not been read, and no answer
	// has come, for the stall timeout. Every byte read from r re-arms the
	// watchdog.
	c := b.transfer(ctx, "PutObject", full, b.stallTimeout)
	defer c.end()
	var optFns []func(*s3.Options)
	in.Body = watchBody(r, c)
	if _, ok := r.(io.ReadSeeker); !ok {
		optFns = append(optFns,
			unsignedPayload,
			func(o *s3.Options) { o.RetryMaxAttempts = 1 }, // r cannot be rewound
		)
	}
	if !opts.SHA256.IsZero() {
		// Computed already: S3 verifies the bytes against it, the SDK
		// computes no checksum when one is set, and the SigV4 payload hash
		// would only be a second pass over the body.
		in.ChecksumSHA256 = checksum(opts.SHA256)
		if len(optFns) == 0 {
			optFns = append(optFns, unsignedPayload)
		}
	}
	if opts.IfAbsent && b.conditional {
		in.IfNoneMatch = aws.String("*")
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	in.Metadata = encodingMetadata(opts)
	if _, err := b.client.PutObject(c.ctx, in, optFns...); err != nil {
		if _, ok := c.timedOut(); ok {
			return c.err("put", key, err, cas.ErrInvalidKey)
		}
		return wrap("put", key, err, cas.ErrExists, cas.ErrDigestMismatch, cas.ErrInvalidKey)
	}
	return nil
}

// crc32c returns the base64 CRC32C of p, as S3's x-amz-checksum-crc32c.
func crc32c(p []byte) *string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(p, castagnoli))
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putMultipart uploads r in parts, at most b.concurrency at once, each from
// its own buffer: memory is bounded by concurrency x part size. Each part
// carries its CRC32C. Any failure, a read error of r included, aborts the
// upload.
func (b *Backend) putMultipart(ctx context.Context, key, full string, r io.Reader, size int64, opts cas.PutOptions) (err error) {
	partSize := b.partSize
	if size > 0 && (size+partSize-1)/partSize > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	create := &s3.CreateMultipartUploadInput{
		Bucket:            &b.bucket,
		Key:               &full,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}
	if opts.ContentType != "" {
		create.ContentType = aws.String(opts.ContentType)
	}
	create.Metadata = encodingMetadata(opts)
	cc := b.meta(ctx, "CreateMultipartUpload", full)
	up, err := b.client.CreateMultipartUpload(cc.ctx, create, cc.withAttemptTimeout)
	err = cc.err("put", key, err, cas.ErrInvalidKey)
	cc.end()
	if err != nil {
		return err
	}
	uploadID := up.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is cancelled: nothing may be left half-done.
		ac := b.meta(context.WithoutCancel(ctx), "AbortMultipartUpload", full)
		defer ac.end()
		if _, aerr := b.client.AbortMultipartUpload(ac.ctx, &s3.AbortMultipartUploadInput{
			Bucket: &b.bucket, Key: &full, UploadId: uploadID,
		}, ac.withAttemptTimeout); aerr != nil {
			err = errors.Join(err, fmt.Errorf("s3store: upload %s of %q left open: %w", aws.ToString(uploadID), key, ac.err("abort upload of", key, aerr)))
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	var (
		mu        sync.Mutex
		parts     []types.CompletedPart
		free      = make(chan []byte, b.concurrency)
		allocated int
		total     int64
	)
	acquire := func() ([]byte, error) {
		if allocated < b.concurrency {
			allocated++
			return nil, nil // grown by readPart as bytes arrive
		}
		select {
		case buf := <-free:
			return buf, nil
		case <-gctx.Done():
			return nil, context.Cause(gctx)
		}
	}
	readErr := func() error {
		for num := int32(1); ; num++ {
			if gctx.Err() != nil {
				return context.Cause(gctx) // a part failed: stop reading
			}
			want := partSize
			if size >= 0 {
				want = min(partSize, size-total)
				if want == 0 {
					return nil
				}
			}
			buf, err := acquire()
			if err != nil {
				return err
			}
			buf, err = readPart(r, buf, want, b.partSize)
			n := len(buf)
			last := false
			switch {
			case size < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
				last = true
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return fmt.Errorf("read %d of %d bytes: %w", total+int64(n), size, io.ErrUnexpectedEOF)
			case err != nil:
				return fmt.Errorf("read: %w", err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if n == 0 && num > 1 {
				return nil
			}
			data := buf
			total += int64(n)
			sum := crc32c(data)
			g.Go(func() error {
				defer func() { free <- buf }()
				pc := b.transfer(gctx, "UploadPart", full, b.stallTimeout)
				defer pc.end()
				out, err := b.client.UploadPart(pc.ctx, &s3.UploadPartInput{
					Bucket:         &b.bucket,
					Key:            &full,
					UploadId:       uploadID,
					PartNumber:     aws.Int32(num),
					Body:           watchBody(bytes.NewReader(data), pc),
					ContentLength:  aws.Int64(int64(len(data))),
					ChecksumCRC32C: sum,
				}, unsignedPayload)
				if err != nil {
					return pc.err(fmt.Sprintf("put part %d of", num), key, err, cas.ErrDigestMismatch)
				}
				mu.Lock()
				parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32C: sum})
				mu.Unlock()
				return nil
			})
			if last {
				return nil
			}
		}
	}()
	if werr := g.Wait(); werr != nil {
		return werr
	}
	if readErr != nil {
		return fmt.Errorf("s3store: put %q: %w", key, readErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber)) - int(aws.ToInt32(b.PartNumber))
	})
	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          &b.bucket,
		Key:             &full,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if opts.IfAbsent && b.conditional {
		complete.IfNoneMatch = aws.String("*")
	}
	// S3 may take minutes to assemble a large object: no attempt
	// timeout, a bound of its own (WithCompleteTimeout).
	fc := b.complete(ctx, full)
	defer fc.end()
	if _, err := b.client.CompleteMultipartUpload(fc.ctx, complete); err != nil {
		return fc.err("put", key, err, cas.ErrExists, cas.ErrDigestMismatch, cas.ErrInvalidKey)
	}
	return nil
}

// readPart reads up to want bytes from r into buf[:0], like io.ReadFull.
// It allocates up to eager bytes (the configured part size) at once, and
// beyond that grows buf as bytes arrive, so that a part size raised for a
// huge declared size allocates only what is actually read. buf never grows
// beyond want bytes.
func readPart(r io.Reader, buf []byte, want, eager int64) ([]byte, error) {
	buf = buf[:0]
	if first := min(want, eager); int64(cap(buf)) < first {
		buf = make([]byte, 0, first)
	}
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			c := min(want, max(2*int64(cap(buf)), 256<<10))
			buf = slices.Grow(buf, int(c)-len(buf))
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), want)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(buf) == 0 {
					return buf, io.EOF
				}
				return buf, io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}
