// Package s3test runs an in-process S3 server for tests and benchmarks:
// gofakes3 behind an httptest.Server, reached with the real aws-sdk-go-v2
// client, plus the AWS behaviours gofakes3 lacks (checksums, conditional
// multipart completion), request counting, latency, a hung mode and
// direct seeding and inspection of the stored objects.
package s3test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/casa-go/casa/internal/keylock"
	"hash"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// DefaultBucket is the bucket New creates unless WithBucket says otherwise.
const DefaultBucket = "casa-test"

// Server is an in-process S3 server for tests and benchmarks: gofakes3 with its
// in-memory backend behind an httptest.Server, plus a real aws-sdk-go-v2
// client pointed at it.
//
// gofakes3 v1.2.0 already implements, and Server therefore serves natively:
// PutObject with If-None-Match "*" (atomic in the s3mem backend, 412
// PreconditionFailed), ranged GetObject (206, Content-Range), HeadObject
// (404 without a body), ListObjectsV2 with max-keys clamped to 1000 and
// continuation tokens, multipart uploads (create, upload part, complete,
// abort, list uploads) and DeleteObject of a missing key (204).
//
// In front of gofakes3, Server adds a middleware that emulates what AWS S3 does
// and gofakes3 v1.2.0 does not:
//
//   - x-amz-checksum-sha256 on PutObject and UploadPart: the value must be the
//     base64 of 32 bytes (else 400 InvalidRequest), and the received body must
//     hash to it (else 400 BadDigest, "The SHA256 you specified did not match
//     the calculated checksum."). The check streams: the body is hashed while
//     gofakes3 reads it, and a mismatch fails the read before gofakes3 stores
//     anything, so a rejected object or part is never stored. Bodies in
//     aws-chunked encoding (x-amz-content-sha256: STREAMING-...) are not
//     checked; the client NewClient builds never sends them.
//   - If-None-Match "*" on CompleteMultipartUpload: when the key exists the
//     request fails with 412 PreconditionFailed and the object is untouched
//     (the upload stays open, as on AWS, until it is aborted). Conditional
//     PutObject and CompleteMultipartUpload requests for one key are
//     serialised under a per-key lock, so concurrent create-only writers of
//     one key see exactly one winner (unconditional ones take the lock
//     too: see replacingMeta).
//   - a PutObject without conditions replaces the object's user metadata
//     (x-amz-meta-*) as a whole, as on AWS: gofakes3 v1.2.0 carries the old
//     object's metadata over to the new one, so a plain object written over
//     one marked x-amz-meta-casa-encoding kept the marker (see replacingMeta).
//
// Server also counts requests and body bytes per S3 operation (see Requests,
// BytesIn and BytesOut) and can inject latency into every request
// (WithLatency) or wrap the handler with a fault injector (WithMiddleware).
// Hang and Resume make it a hung server: connections accepted, no answers.
type Server struct {
	// Client is a real S3 client for the server: static credentials,
	// region us-east-1, path-style addressing, checksums only when required.
	Client *s3.Client
	// Bucket is the bucket New created.
	Bucket string
	// URL is the server's base URL, e.g. http://127.0.0.1:12345.
	URL string

	srv     *httptest.Server
	backend *s3mem.Backend
	stats   sync.Map // operation name -> *opStats
	locks   keylock.Set

	hangMu  sync.Mutex
	release chan struct{}   // closed by Resume; nil when not hung
	hangOps map[string]bool // operations that hang; empty: all
	held    atomic.Int64    // requests held right now
}

type opStats struct {
	requests, bytesIn, bytesOut atomic.Int64
}

// Option configures New.
type Option func(*config)

type config struct {
	bucket      string
	latency     time.Duration
	middlewares []func(http.Handler) http.Handler
}

// WithBucket sets the name of the bucket New creates.
func WithBucket(name string) Option { return func(c *config) { c.bucket = name } }

// WithLatency delays every HTTP request by d before the server handles it,
// to emulate a remote S3. The delay ends early when the request is cancelled.
func WithLatency(d time.Duration) Option { return func(c *config) { c.latency = d } }

// WithMiddleware wraps the S3 handler (inside request counting and latency,
// outside the AWS emulation) with mw, for fault injection: mw can answer a
// request itself, for example with WriteError. Use Operation to tell
// requests apart. Several middlewares apply in order, the first outermost.
func WithMiddleware(mw func(http.Handler) http.Handler) Option {
	return func(c *config) { c.middlewares = append(c.middlewares, mw) }
}

// New starts an S3 server, creates a bucket in it and returns the server
// with a client for it. The server is closed when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start is New for code that has no testing.TB, such as the benchmark
// report: it starts the server and creates the bucket; the caller closes the
// server with Close.
func Start(opts ...Option) (*Server, error) {
	cfg := config{bucket: DefaultBucket}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{Bucket: cfg.bucket, backend: s3mem.New()}
	fake := gofakes3.New(replacingMeta{s.backend}, gofakes3.WithoutVersioning())

	var h http.Handler = s.emulate(fake.Server())
	for i := len(cfg.middlewares) - 1; i >= 0; i-- {
		h = cfg.middlewares[i](h)
	}
	h = s.hang(h)
	h = s.count(h)
	if cfg.latency > 0 {
		h = latency(cfg.latency, h)
	}
	srv := httptest.NewUnstartedServer(h)
	// gofakes3 writes a second header when a client hangs up mid-body (a
	// ranged read that stops early); net/http would log each one.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	s.srv = srv
	s.URL = srv.URL
	s.Client = NewClient(srv.URL)

	if err := s.backend.CreateBucket(s.Bucket); err != nil {
		srv.Close()
		return nil, fmt.Errorf("s3test: create bucket %q: %w", s.Bucket, err)
	}
	return s, nil
}

// Close shuts the server down, first resuming a hung server so that the
// requests it holds can end. New arranges it through t.Cleanup.
func (s *Server) Close() {
	s.Resume()
	s.srv.Close()
}

// Hang makes the server stop answering, as a stopped process or a network
// partition would: from now on, every request for one of the S3 operations
// ops (as named by Operation; all operations when ops is empty) is
// accepted and then held, unanswered and its body unread, until Resume or
// until the request's context ends (the client hung up; for a request with
// an unread body net/http notices only at Resume). A request released by
// Resume is then served normally, as a resumed process would. Requests
// already being served are not affected.
func (s *Server) Hang(ops ...string) {
	s.hangMu.Lock()
	defer s.hangMu.Unlock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
	s.hangOps = make(map[string]bool, len(ops))
	for _, op := range ops {
		s.hangOps[op] = true
	}
}

// Resume ends Hang: held requests go on and new ones are served at once.
func (s *Server) Resume() {
	s.hangMu.Lock()
	defer s.hangMu.Unlock()
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
}

// Held returns how many requests a hung server is holding right now.
func (s *Server) Held() int { return int(s.held.Load()) }

// hanging returns the channel that Resume closes when requests for op must
// hang, else nil.
func (s *Server) hanging(op string) <-chan struct{} {
	s.hangMu.Lock()
	defer s.hangMu.Unlock()
	if s.release == nil || (len(s.hangOps) > 0 && !s.hangOps[op]) {
		return nil
	}
	return s.release
}

func (s *Server) hang(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if release := s.hanging(Operation(r)); release != nil {
			s.held.Add(1)
			select {
			case <-release:
				s.held.Add(-1)
			case <-r.Context().Done():
				s.held.Add(-1)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// NewClient returns an aws-sdk-go-v2 S3 client for an S3-compatible
// endpoint such as the one New starts: static test credentials, region
// us-east-1, path-style addressing, and request checksums and response
// checksum validation only when an operation requires them.
func NewClient(endpoint string) *s3.Client {
	cfg := aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// Requests returns how many requests for the S3 operation op (as named by
// Operation, e.g. "GetObject") the server has received.
func (s *Server) Requests(op string) int64 { return s.op(op).requests.Load() }

// BytesIn returns how many request body bytes the handler has read for op.
func (s *Server) BytesIn(op string) int64 { return s.op(op).bytesIn.Load() }

// BytesOut returns how many response body bytes the server has written for op.
func (s *Server) BytesOut(op string) int64 { return s.op(op).bytesOut.Load() }

// ResetStats sets every request and byte count to zero.
func (s *Server) ResetStats() {
	s.stats.Range(func(k, _ any) bool {
		s.stats.Delete(k)
		return true
	})
}

func (s *Server) op(name string) *opStats {
	v, _ := s.stats.LoadOrStore(name, new(opStats))
	return v.(*opStats)
}

// Operation names the S3 API operation of a path-style request, e.g.
// "PutObject", "UploadPart", "CompleteMultipartUpload", "GetObject",
// "HeadObject", "ListObjectsV2", "DeleteObject", or "Unknown".
func Operation(r *http.Request) string {
	bucket, key := splitPath(r.URL.Path)
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch {
	case bucket == "":
		if r.Method == http.MethodGet {
			return "ListBuckets"
		}
	case key == "":
		switch r.Method {
		case http.MethodGet:
			switch {
			case has("uploads"):
				return "ListMultipartUploads"
			case q.Get("list-type") == "2":
				return "ListObjectsV2"
			case has("location"):
				return "GetBucketLocation"
			case has("versioning"):
				return "GetBucketVersioning"
			}
			return "ListObjects"
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodPut:
			return "CreateBucket"
		case http.MethodDelete:
			return "DeleteBucket"
		case http.MethodPost:
			if has("delete") {
				return "DeleteObjects"
			}
		}
	default:
		switch r.Method {
		case http.MethodGet:
			if has("uploadId") {
				return "ListParts"
			}
			return "GetObject"
		case http.MethodHead:
			return "HeadObject"
		case http.MethodPut:
			switch {
			case has("uploadId"):
				return "UploadPart"
			case r.Header.Get("X-Amz-Copy-Source") != "":
				return "CopyObject"
			}
			return "PutObject"
		case http.MethodDelete:
			if has("uploadId") {
				return "AbortMultipartUpload"
			}
			return "DeleteObject"
		case http.MethodPost:
			switch {
			case has("uploads"):
				return "CreateMultipartUpload"
			case has("uploadId"):
				return "CompleteMultipartUpload"
			}
		}
	}
	return "Unknown"
}

// splitPath splits a path-style request path into bucket and key.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// WriteError writes an S3 XML error response, as AWS S3 does.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	_ = xml.NewEncoder(&buf).Encode(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Resource  string
		RequestID string `xml:"RequestId"`
	}{Code: code, Message: message, Resource: r.URL.Path, RequestID: "casa-testutil"})
	_, _ = w.Write(buf.Bytes())
}

func latency(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.op(Operation(r))
		st.requests.Add(1)
		r.Body = &countingBody{ReadCloser: r.Body, n: &st.bytesIn}
		next.ServeHTTP(&countingWriter{ResponseWriter: w, n: &st.bytesOut}, r)
	})
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// emulate adds the AWS behaviours gofakes3 lacks (see the Server doc comment).
func (s *Server) emulate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := Operation(r)
		bucket, key := splitPath(r.URL.Path)
		conditional := r.Header.Get("If-None-Match") == "*"

		streaming := strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-")
		if (op == "PutObject" || op == "UploadPart") && r.Header.Get("X-Amz-Checksum-Sha256") != "" && !streaming {
			want, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Amz-Checksum-Sha256"))
			if err != nil || len(want) != sha256.Size {
				WriteError(w, r, http.StatusBadRequest, "InvalidRequest", "Value for x-amz-checksum-sha256 header is invalid.")
				return
			}
			vb := &verifyingBody{ReadCloser: r.Body, h: sha256.New(), want: want}
			r.Body = vb
			w = &digestWriter{ResponseWriter: w, r: r, body: vb}
		}

		switch {
		case conditional && op == "CompleteMultipartUpload":
			unlock := s.locks.Lock(bucket + "/" + key)
			defer unlock()
			if _, err := s.backend.HeadObject(bucket, key); err == nil {
				WriteError(w, r, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
				return
			} else if !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
				WriteError(w, r, http.StatusInternalServerError, "InternalError", "head before conditional complete failed")
				return
			}
		case op == "PutObject" || op == "CompleteMultipartUpload":
			// Unconditional writes too: one that drops user metadata is
			// a delete and a store (replacingMeta), which a create-only
			// write of the key must not land between (it would succeed
			// over an existing object, and lend the replacing write its
			// metadata).
			unlock := s.locks.Lock(bucket + "/" + key)
			defer unlock()
		case op == "GetObject" && r.Header.Get("If-Match") != "":
			// gofakes3 ignores If-Match on reads; AWS answers 412.
			obj, err := s.backend.HeadObject(bucket, key)
			if err != nil {
				break // gofakes3 answers NoSuchKey itself
			}
			if etag := `"` + hex.EncodeToString(obj.Hash) + `"`; r.Header.Get("If-Match") != etag && r.Header.Get("If-Match") != "*" {
				WriteError(w, r, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// errBadDigest fails gofakes3's read of a body whose SHA-256 does not match.
var errBadDigest = errors.New("s3test: x-amz-checksum-sha256 mismatch")

// verifyingBody hashes a request body as it is read and fails the final
// read when the digest does not match.
type verifyingBody struct {
	io.ReadCloser
	h        hash.Hash
	want     []byte
	mismatch atomic.Bool
}

func (v *verifyingBody) Read(p []byte) (int, error) {
	n, err := v.ReadCloser.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) && !bytes.Equal(v.h.Sum(nil), v.want) {
		v.mismatch.Store(true)
		return n, errBadDigest
	}
	return n, err
}

// digestWriter replaces gofakes3's response with 400 BadDigest when the
// body failed verification.
type digestWriter struct {
	http.ResponseWriter
	r       *http.Request
	body    *verifyingBody
	decided bool
	swallow bool
}

func (d *digestWriter) decide() {
	if d.decided {
		return
	}
	d.decided = true
	if d.body.mismatch.Load() {
		d.swallow = true
		WriteError(d.ResponseWriter, d.r, http.StatusBadRequest, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")
	}
}

func (d *digestWriter) WriteHeader(code int) {
	d.decide()
	if !d.swallow {
		d.ResponseWriter.WriteHeader(code)
	}
}

func (d *digestWriter) Write(p []byte) (int, error) {
	d.decide()
	if d.swallow {
		return len(p), nil
	}
	return d.ResponseWriter.Write(p)
}

// Seed stores body under key straight in the server's storage backend,
// bypassing HTTP (and the request counters): a fast way to fill the bucket
// with many objects before a test or benchmark.
func (s *Server) Seed(t testing.TB, key string, body []byte) {
	t.Helper()
	meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat)}
	if _, err := s.backend.PutObject(s.Bucket, key, meta, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatalf("s3test: seed %q: %v", key, err)
	}
}

// ObjectKeys returns every key in the server's bucket, straight from the
// storage backend (not through the S3 API), in lexical order.
func (s *Server) ObjectKeys(t testing.TB) []string {
	t.Helper()
	res, err := s.backend.ListBucket(s.Bucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatalf("s3test: list %q: %v", s.Bucket, err)
	}
	keys := make([]string, 0, len(res.Contents))
	for _, c := range res.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}

// OpenUploads returns how many multipart uploads are open (neither
// completed nor aborted) in the server's bucket.
func (s *Server) OpenUploads(t testing.TB) int {
	t.Helper()
	n := 0
	var keyMarker, idMarker *string
	for {
		out, err := s.Client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{
			Bucket: aws.String(s.Bucket), KeyMarker: keyMarker, UploadIdMarker: idMarker,
		})
		if err != nil {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
				return n // gofakes3's answer when the bucket never had one
			}
			t.Fatalf("s3test: list uploads: %v", err)
		}
		n += len(out.Uploads)
		if !aws.ToBool(out.IsTruncated) {
			return n
		}
		keyMarker, idMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// replacingMeta is the s3mem backend with AWS's metadata semantics: a
// PutObject without conditions replaces the object's user metadata
// (x-amz-meta-*) as a whole. gofakes3 v1.2.0 merges the old object's
// metadata into the new one's (gofakes3.MergeMetadata), and only deleting
// the object makes s3mem forget it: when the new object drops user
// metadata the old one had, PutObject reads the body, deletes the old
// object and stores the new one, so a reader of the key may find it
// missing for a moment (AWS replaces atomically); writers do not: every
// PutObject and CompleteMultipartUpload of the key holds the server's
// per-key lock (emulate), so a create-only write cannot land between the
// delete and the store. Conditional writes are untouched (a create-only
// write finds no object to merge).
type replacingMeta struct{ *s3mem.Backend }

func (b replacingMeta) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if conditions != nil {
		return b.Backend.PutObject(bucket, key, meta, input, size, conditions)
	}
	old, err := b.Backend.HeadObject(bucket, key)
	if err != nil || !dropsUserMeta(old.Metadata, meta) {
		return b.Backend.PutObject(bucket, key, meta, input, size, nil)
	}
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err // the old object stays
	}
	if _, err := b.Backend.DeleteObject(bucket, key); err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	return b.Backend.PutObject(bucket, key, meta, bytes.NewReader(body), size, nil)
}

// dropsUserMeta reports whether old has user metadata (x-amz-meta-*) that
// meta has not.
func dropsUserMeta(old, meta map[string]string) bool {
	for k := range old {
		if _, ok := meta[k]; !ok && strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
			return true
		}
	}
	return false
}
