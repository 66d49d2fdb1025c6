package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

func readAll(t *testing.T, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(t.Context(), key)
	require.NoError(t, err)
	defer obj.Close()
	p, err := io.ReadAll(obj)
	require.NoError(t, err)
	return p
}

func requireMissing(t *testing.T, b cas.Backend, key string) {
	t.Helper()
	_, err := b.Stat(t.Context(), key)
	require.ErrorIs(t, err, cas.ErrNotFound, "Stat %q", key)
}

// injector answers requests for one S3 operation with an S3 error (status
// 0: none) and records the headers of that operation's requests since set.
type injector struct {
	mu      sync.Mutex
	op      string
	match   func(*http.Request) bool
	status  int
	code    string
	headers []http.Header // of requests for op
}

func (in *injector) set(op string, status int, code string, match func(*http.Request) bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.op, in.status, in.code, in.match = op, status, code, match
	in.headers = nil
}

func (in *injector) seen() []http.Header {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]http.Header(nil), in.headers...)
}

func (in *injector) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		op := s3test.Operation(r)
		hit := op == in.op && (in.match == nil || in.match(r))
		if op == in.op {
			in.headers = append(in.headers, r.Header.Clone())
		}
		status, code := in.status, in.code
		in.mu.Unlock()
		if hit && status != 0 {
			_, _ = io.Copy(io.Discard, r.Body)
			s3test.WriteError(w, r, status, code, "injected by the test")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func newInjected(t *testing.T, opts ...s3store.Option) (*s3store.Backend, *s3test.Server, *injector) {
	in := &injector{}
	s := s3test.New(t, s3test.WithMiddleware(in.middleware))
	return s3store.New(s.Client, s.Bucket, opts...), s, in
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	p := []byte("some bytes")
	h := cas.SumBytes(p)
	putOp := func(b *s3store.Backend) error {
		return b.Put(t.Context(), h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: h, IfAbsent: true})
	}
	statOp := func(b *s3store.Backend) error { _, err := b.Stat(t.Context(), h.Key()); return err }
	openOp := func(b *s3store.Backend) error { _, err := b.Open(t.Context(), h.Key()); return err }
	deleteOp := func(b *s3store.Backend) error { return b.Delete(t.Context(), h.Key()) }
	listOp := func(b *s3store.Backend) error {
		for _, err := range b.List(t.Context(), "") {
			return err
		}
		return errors.New("List yielded nothing")
	}
	tests := []struct {
		name   string
		op     string
		status int
		code   string
		call   func(*s3store.Backend) error
		want   error // sentinel, or nil for "none of them"
		nilErr bool
	}{
		{"head 404", "HeadObject", 404, "NotFound", statOp, cas.ErrNotFound, false},
		{"head 404 on open", "HeadObject", 404, "NotFound", openOp, cas.ErrNotFound, false},
		{"head 403", "HeadObject", 403, "Forbidden", statOp, nil, false},
		{"head 500", "HeadObject", 500, "InternalError", statOp, nil, false},
		{"put 412", "PutObject", 412, "PreconditionFailed", putOp, cas.ErrExists, false},
		{"put 409 conflict", "PutObject", 409, "ConditionalRequestConflict", putOp, cas.ErrExists, false},
		{"put 409 other", "PutObject", 409, "OperationAborted", putOp, nil, false},
		{"put BadDigest", "PutObject", 400, "BadDigest", putOp, cas.ErrDigestMismatch, false},
		{"put XAmzContentSHA256Mismatch", "PutObject", 400, "XAmzContentSHA256Mismatch", putOp, cas.ErrDigestMismatch, false},
		{"put InvalidDigest", "PutObject", 400, "InvalidDigest", putOp, cas.ErrDigestMismatch, false},
		{"put 403", "PutObject", 403, "AccessDenied", putOp, nil, false},
		{"put NoSuchBucket", "PutObject", 404, "NoSuchBucket", putOp, nil, false},
		{"put 404 is not ErrNotFound", "PutObject", 404, "NoSuchKey", putOp, nil, false},
		{"delete NoSuchKey", "DeleteObject", 404, "NoSuchKey", deleteOp, nil, true},
		{"delete 403", "DeleteObject", 403, "AccessDenied", deleteOp, nil, false},
		{"list NoSuchBucket", "ListObjectsV2", 404, "NoSuchBucket", listOp, nil, false},
		{"list 500", "ListObjectsV2", 501, "NotImplemented", listOp, nil, false},
	}
	sentinels := []error{cas.ErrNotFound, cas.ErrExists, cas.ErrDigestMismatch}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, _, in := newInjected(t)
			in.set(tc.op, tc.status, tc.code, nil)
			err := tc.call(b)
			if tc.nilErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "s3store:")
			for _, s := range sentinels {
				if s == tc.want {
					require.ErrorIs(t, err, s)
				} else {
					require.NotErrorIs(t, err, s)
				}
			}
			var ae smithy.APIError
			require.ErrorAs(t, err, &ae, "the S3 error stays in the chain")
		})
	}
}

func TestNoSuchBucket(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, "no-such-bucket")
	p := []byte("x")
	err := b.Put(t.Context(), "k", bytes.NewReader(p), 1, cas.PutOptions{})
	require.Error(t, err)
	require.NotErrorIs(t, err, cas.ErrNotFound)
	for _, err := range b.List(t.Context(), "") {
		require.Error(t, err)
		require.NotErrorIs(t, err, cas.ErrNotFound)
	}
}

// TestReadOfReplacedKeyFails: an Object reads only the version Open saw
// (GetObject with If-Match), so a legacy key replaced mid-read is an error,
// never a mix of two versions' bytes.
func TestReadOfReplacedKeyFails(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	ctx := t.Context()
	old, repl := testutil.Bytes(1, 1000), testutil.Bytes(2, 1000)
	require.NoError(t, b.Put(ctx, "legacy/x", bytes.NewReader(old), int64(len(old)), cas.PutOptions{}))

	obj, err := b.Open(ctx, "legacy/x")
	require.NoError(t, err)
	defer obj.Close()
	head := make([]byte, 100)
	_, err = io.ReadFull(obj, head)
	require.NoError(t, err)
	require.Equal(t, old[:100], head)

	require.NoError(t, b.Put(ctx, "legacy/x", bytes.NewReader(repl), int64(len(repl)), cas.PutOptions{}))
	_, err = obj.Seek(500, io.SeekStart) // forces a new ranged GET
	require.NoError(t, err)
	n, err := obj.Read(make([]byte, 100))
	require.Error(t, err, "the key changed after Open")
	require.Zero(t, n)
	require.Contains(t, err.Error(), "PreconditionFailed")

	fresh, err := b.Open(ctx, "legacy/x")
	require.NoError(t, err)
	defer fresh.Close()
	got, err := io.ReadAll(fresh)
	require.NoError(t, err)
	require.Equal(t, repl, got, "a new Open reads the new version")
}

func TestRangedReadsFetchOnlyWhatIsRead(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	const size = 1 << 20
	p := testutil.Bytes(1, size)
	s.Seed(t, "big", p)

	obj, err := b.Open(t.Context(), "big")
	require.NoError(t, err)
	defer obj.Close()
	require.Equal(t, int64(size), obj.Info().Size)
	require.EqualValues(t, 1, s.Requests("HeadObject"))
	require.Zero(t, s.Requests("GetObject"), "Open fetches no data")

	for _, off := range []int64{size - 1, 0, 5000, size / 2} {
		_, err := obj.Seek(off, io.SeekStart)
		require.NoError(t, err)
	}
	_, err = obj.Seek(-10, io.SeekEnd)
	require.NoError(t, err)
	require.Zero(t, s.Requests("GetObject"), "Seek fetches no data")

	got := make([]byte, 10)
	_, err = io.ReadFull(obj, got)
	require.NoError(t, err)
	require.Equal(t, p[size-10:], got)
	require.EqualValues(t, 1, s.Requests("GetObject"))
	require.EqualValues(t, 10, s.BytesOut("GetObject"), "a read of the last 10 bytes transfers 10 bytes")

	n, err := obj.Read(got)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
	require.EqualValues(t, 1, s.Requests("GetObject"), "Read at the end needs no request")

	// Sequential reads continue on one response body.
	_, err = obj.Seek(1000, io.SeekStart)
	require.NoError(t, err)
	chunk := make([]byte, 4096)
	for i := range 5 {
		_, err := io.ReadFull(obj, chunk)
		require.NoError(t, err)
		off := 1000 + i*4096
		require.Equal(t, p[off:off+4096], chunk)
	}
	require.EqualValues(t, 2, s.Requests("GetObject"), "sequential reads reuse the open ranged GET")
	require.NoError(t, obj.Close())
	require.NoError(t, obj.Close(), "Close twice")
	_, err = obj.Read(chunk)
	require.Error(t, err, "Read after Close")
	_, err = obj.Seek(0, io.SeekStart)
	require.Error(t, err, "Seek after Close")
}

func TestObjectInvalidSeek(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	s.Seed(t, "k", []byte("0123456789"))
	obj, err := b.Open(t.Context(), "k")
	require.NoError(t, err)
	defer obj.Close()
	_, err = obj.Seek(0, 42)
	require.Error(t, err)
	_, err = obj.Seek(-11, io.SeekEnd)
	require.Error(t, err)
	pos, err := obj.Seek(3, io.SeekStart)
	require.NoError(t, err, "a failed Seek leaves the position")
	require.Equal(t, int64(3), pos)
	n, err := obj.Read(nil)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, s.Requests("GetObject"), "an empty Read fetches nothing")
	rest, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, []byte("3456789"), rest)
}

func TestObjectDeletedWhileOpen(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	s.Seed(t, "k", []byte("short-lived"))
	obj, err := b.Open(t.Context(), "k")
	require.NoError(t, err)
	defer obj.Close()
	require.NoError(t, b.Delete(t.Context(), "k"))
	_, err = obj.Read(make([]byte, 4))
	require.ErrorIs(t, err, cas.ErrNotFound)
}

func TestIfAbsentUsesConditionalPut(t *testing.T) {
	t.Parallel()
	b, s, in := newInjected(t)
	in.set("PutObject", 0, "", nil) // record only
	p := []byte("first")
	require.NoError(t, b.Put(t.Context(), "k", bytes.NewReader(p), 5, cas.PutOptions{IfAbsent: true, ContentType: "text/plain"}))
	err := b.Put(t.Context(), "k", strings.NewReader("second"), 6, cas.PutOptions{IfAbsent: true})
	require.ErrorIs(t, err, cas.ErrExists)
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "PreconditionFailed", ae.ErrorCode(), "the server said 412")
	require.Equal(t, p, readAll(t, b, "k"))
	require.Zero(t, s.Requests("HeadObject")-1, "only readAll's Open issued a HEAD")

	hs := in.seen()
	require.Len(t, hs, 2)
	for _, h := range hs {
		require.Equal(t, "*", h.Get("If-None-Match"))
	}
	require.Equal(t, "text/plain", hs[0].Get("Content-Type"))

	// Without IfAbsent the object is replaced and no condition is sent.
	require.NoError(t, b.Put(t.Context(), "k", strings.NewReader("third"), 5, cas.PutOptions{}))
	require.Equal(t, []byte("third"), readAll(t, b, "k"))
	require.Empty(t, in.seen()[2].Get("If-None-Match"))
}

func TestChecksumSentAndVerified(t *testing.T) {
	t.Parallel()
	b, s, in := newInjected(t)
	in.set("PutObject", 0, "", nil)
	p := testutil.Bytes(2, 3000)
	h := cas.SumBytes(p)
	require.NoError(t, b.Put(t.Context(), h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: h}))
	require.NotEmpty(t, in.seen()[0].Get("X-Amz-Checksum-Sha256"))

	wrong := cas.SumBytes([]byte("not p"))
	err := b.Put(t.Context(), wrong.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: wrong, IfAbsent: true})
	require.ErrorIs(t, err, cas.ErrDigestMismatch)
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "BadDigest", ae.ErrorCode(), "S3 itself rejected the bytes")
	requireMissing(t, b, wrong.Key())
	require.EqualValues(t, 2, s.Requests("PutObject"))

	// Without SHA256 no checksum is sent.
	require.NoError(t, b.Put(t.Context(), "legacy/x", bytes.NewReader(p), int64(len(p)), cas.PutOptions{}))
	require.Empty(t, in.seen()[2].Get("X-Amz-Checksum-Sha256"))
}

func TestPutBodies(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket, s3store.WithMultipartThreshold(64<<10), s3store.WithPartSize(32<<10))
	type onlyReader struct{ io.Reader }
	small, large := testutil.Bytes(3, 5000), testutil.Bytes(4, 200<<10)
	tests := []struct {
		name string
		p    []byte
		r    func([]byte) io.Reader
		size func([]byte) int64
	}{
		{"seekable", small, func(p []byte) io.Reader { return bytes.NewReader(p) }, nil},
		{"plain reader", small, func(p []byte) io.Reader { return onlyReader{bytes.NewReader(p)} }, nil},
		{"unknown size small", small, func(p []byte) io.Reader { return onlyReader{bytes.NewReader(p)} }, func([]byte) int64 { return -1 }},
		{"unknown size large", large, func(p []byte) io.Reader { return onlyReader{bytes.NewReader(p)} }, func([]byte) int64 { return -1 }},
		{"unknown size exact part", large[:64<<10], func(p []byte) io.Reader { return onlyReader{bytes.NewReader(p)} }, func([]byte) int64 { return -1 }},
		{"unknown size empty", nil, func(p []byte) io.Reader { return onlyReader{bytes.NewReader(p)} }, func([]byte) int64 { return -1 }},
		{"multipart plain reader", large, func(p []byte) io.Reader { return onlyReader{bytes.NewReader(p)} }, nil},
		{"seekable not at start", small, func(p []byte) io.Reader {
			r := bytes.NewReader(append([]byte("skip me"), p...))
			_, _ = r.Seek(7, io.SeekStart)
			return r
		}, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := fmt.Sprintf("bodies/%d", i)
			size := int64(len(tc.p))
			if tc.size != nil {
				size = tc.size(tc.p)
			}
			h := cas.SumBytes(tc.p)
			require.NoError(t, b.Put(t.Context(), key, tc.r(tc.p), size, cas.PutOptions{SHA256: h, IfAbsent: true}))
			require.True(t, bytes.Equal(tc.p, readAll(t, b, key)))
		})
	}
}

func TestHostileKeys(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	// Through the checked layer, as a Store calls it: the empty and the
	// invalid UTF-8 key break cas.CheckKey; the long one passes it but not,
	// with the bucket prefix, S3's limit, which s3store checks itself.
	raw := s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix("pre/"))
	b := cas.Checked(raw)
	long := strings.Repeat("kkkkkkkkk/", 101) + "kkkkkkkkkkk" // 1021 bytes, valid segments
	require.ErrorIs(t, raw.Put(t.Context(), long, strings.NewReader("x"), 1, cas.PutOptions{}), cas.ErrInvalidKey, "the thin Backend alone, over S3's limit")
	for _, key := range []string{"", long, "bad\xffutf8"} {
		err := b.Put(t.Context(), key, strings.NewReader("x"), 1, cas.PutOptions{})
		require.ErrorIs(t, err, cas.ErrInvalidKey, "Put %q", key)
		_, err = b.Stat(t.Context(), key)
		require.ErrorIs(t, err, cas.ErrInvalidKey)
		require.NotErrorIs(t, err, cas.ErrNotFound)
		_, err = b.Open(t.Context(), key)
		require.Error(t, err)
		require.Error(t, b.Delete(t.Context(), key))
	}
	for _, op := range []string{"PutObject", "HeadObject", "DeleteObject"} {
		require.Zero(t, s.Requests(op), "invalid keys never reach S3")
	}
	// 1020 bytes plus the 4-byte prefix is S3's limit exactly.
	require.NoError(t, b.Put(t.Context(), long[:1020], strings.NewReader("x"), 1, cas.PutOptions{}))
}

func TestKeyPrefix(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	a := s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix("tenant-a/"))
	other := s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix("tenant-b/"))
	s.Seed(t, "outside", []byte("o"))
	h := cas.SumBytes([]byte("a"))
	require.NoError(t, a.Put(t.Context(), h.Key(), strings.NewReader("a"), 1, cas.PutOptions{SHA256: h, IfAbsent: true}))
	require.NoError(t, other.Put(t.Context(), h.Key(), strings.NewReader("a"), 1, cas.PutOptions{SHA256: h, IfAbsent: true}),
		"the same key in another prefix is another object")
	require.Equal(t, []string{"outside", "tenant-a/" + h.Key(), "tenant-b/" + h.Key()}, s.ObjectKeys(t))

	var keys []string
	for info, err := range a.List(t.Context(), "") {
		require.NoError(t, err)
		keys = append(keys, info.Key)
		require.Equal(t, int64(1), info.Size)
	}
	require.Equal(t, []string{h.Key()}, keys, "List strips the prefix and sees only its own keys")
	info, err := a.Stat(t.Context(), h.Key())
	require.NoError(t, err)
	require.Equal(t, h.Key(), info.Key)
	require.NoError(t, a.Delete(t.Context(), h.Key()))
	requireMissing(t, a, h.Key())
	_, err = other.Stat(t.Context(), h.Key())
	require.NoError(t, err)
}

func TestListPaginatesAndStopsOnBreak(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	const n = 2345
	for i := range n {
		s.Seed(t, fmt.Sprintf("p/%05d", i), []byte{byte(i)})
	}
	s.Seed(t, "q", nil)
	i := 0
	for info, err := range b.List(t.Context(), "p/") {
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("p/%05d", i), info.Key)
		require.Equal(t, int64(1), info.Size)
		require.False(t, info.ModTime.IsZero())
		i++
	}
	require.Equal(t, n, i)
	require.EqualValues(t, 3, s.Requests("ListObjectsV2"), "1000 keys per page")

	s.ResetStats()
	i = 0
	for _, err := range b.List(t.Context(), "p/") {
		require.NoError(t, err)
		if i++; i == 10 {
			break
		}
	}
	require.EqualValues(t, 1, s.Requests("ListObjectsV2"), "a break stops fetching pages")
}

func TestListErrorMidway(t *testing.T) {
	t.Parallel()
	b, s, in := newInjected(t)
	for i := range 1500 {
		s.Seed(t, fmt.Sprintf("k/%04d", i), nil)
	}
	in.set("ListObjectsV2", 403, "AccessDenied", func(r *http.Request) bool { return r.URL.Query().Has("continuation-token") })
	var n, errs int
	for _, err := range b.List(t.Context(), "k/") {
		if err != nil {
			errs++
			continue
		}
		n++
	}
	require.Equal(t, 1000, n, "the first page is yielded")
	require.Equal(t, 1, errs, "the error is yielded once and ends the iteration")
}

func TestWithoutConditionalWrites(t *testing.T) {
	t.Parallel()
	b, s, in := newInjected(t, s3store.WithoutConditionalWrites(), s3store.WithMultipartThreshold(10<<10), s3store.WithPartSize(8<<10))
	in.set("PutObject", 0, "", nil)
	require.NoError(t, b.Put(t.Context(), "k", strings.NewReader("first"), 5, cas.PutOptions{IfAbsent: true}))
	err := b.Put(t.Context(), "k", strings.NewReader("second"), 6, cas.PutOptions{IfAbsent: true})
	require.ErrorIs(t, err, cas.ErrExists)
	require.EqualValues(t, 2, s.Requests("HeadObject"), "one HEAD per create-only Put")
	require.EqualValues(t, 1, s.Requests("PutObject"), "no write when the key exists")
	require.Equal(t, []byte("first"), readAll(t, b, "k"))
	for _, h := range in.seen() {
		require.Empty(t, h.Get("If-None-Match"), "no conditional header is sent")
	}

	in.set("CompleteMultipartUpload", 0, "", nil)
	p := testutil.Bytes(5, 30<<10)
	require.NoError(t, b.Put(t.Context(), "mp", bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true}))
	require.ErrorIs(t, b.Put(t.Context(), "mp", bytes.NewReader(p), int64(len(p)), cas.PutOptions{IfAbsent: true}), cas.ErrExists)
	require.EqualValues(t, 1, s.Requests("CreateMultipartUpload"), "no upload starts when the key exists")
	require.Len(t, in.seen(), 1)
	require.Empty(t, in.seen()[0].Get("If-None-Match"))

	// A HEAD failure other than 404 fails the Put without writing.
	in.set("HeadObject", 403, "Forbidden", nil)
	err = b.Put(t.Context(), "other", strings.NewReader("x"), 1, cas.PutOptions{IfAbsent: true})
	require.Error(t, err)
	require.NotErrorIs(t, err, cas.ErrExists)
	require.EqualValues(t, 1, s.Requests("PutObject"))
}

func TestMultipart(t *testing.T) {
	t.Parallel()
	const partSize, concurrency = 64 << 10, 3
	var inFlight, maxInFlight atomic.Int32
	var checksums atomic.Int32
	track := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s3test.Operation(r) == "UploadPart" {
				n := inFlight.Add(1)
				for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
				}
				if r.Header.Get("X-Amz-Checksum-Crc32c") != "" && r.Header.Get("X-Amz-Checksum-Sha256") == "" {
					checksums.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
				defer inFlight.Add(-1)
			}
			next.ServeHTTP(w, r)
		})
	}
	s := s3test.New(t, s3test.WithMiddleware(track))
	b := s3store.New(s.Client, s.Bucket, s3store.WithMultipartThreshold(100<<10), s3store.WithPartSize(partSize), s3store.WithConcurrency(concurrency))

	p := testutil.Bytes(6, 1<<20+123) // 17 parts, the last of 123 bytes
	h := cas.SumBytes(p)
	require.NoError(t, b.Put(t.Context(), h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: h, IfAbsent: true, ContentType: "application/pdf"}))
	require.True(t, bytes.Equal(p, readAll(t, b, h.Key())))
	require.EqualValues(t, 1, s.Requests("CreateMultipartUpload"))
	require.EqualValues(t, 17, s.Requests("UploadPart"))
	require.EqualValues(t, 17, checksums.Load(), "every part carries its CRC32C, and no SHA-256")
	require.EqualValues(t, 1, s.Requests("CompleteMultipartUpload"))
	require.Zero(t, s.Requests("PutObject"))
	require.LessOrEqual(t, maxInFlight.Load(), int32(concurrency), "at most WithConcurrency parts in flight")
	require.Greater(t, maxInFlight.Load(), int32(1), "parts are sent concurrently")
	require.Zero(t, s.OpenUploads(t))

	// At the threshold exactly, a single PutObject.
	q := testutil.Bytes(7, 100<<10)
	require.NoError(t, b.Put(t.Context(), "at-threshold", bytes.NewReader(q), int64(len(q)), cas.PutOptions{}))
	require.EqualValues(t, 1, s.Requests("PutObject"))
	require.EqualValues(t, 1, s.Requests("CreateMultipartUpload"))

	// Create-only over the existing blob: 412 at Complete, upload aborted.
	err := b.Put(t.Context(), h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: h, IfAbsent: true})
	require.ErrorIs(t, err, cas.ErrExists)
	require.EqualValues(t, 1, s.Requests("AbortMultipartUpload"))
	require.Zero(t, s.OpenUploads(t))
	require.True(t, bytes.Equal(p, readAll(t, b, h.Key())))
}

func TestMultipartFailuresLeaveNothing(t *testing.T) {
	t.Parallel()
	p := testutil.Bytes(8, 300<<10)
	h := cas.SumBytes(p)
	wrong := cas.SumBytes([]byte("wrong"))
	opts := []s3store.Option{s3store.WithMultipartThreshold(64 << 10), s3store.WithPartSize(32 << 10), s3store.WithConcurrency(2)}
	var cancelAt atomic.Pointer[context.CancelFunc]
	partN := func(n string) func(*http.Request) bool {
		return func(r *http.Request) bool { return r.URL.Query().Get("partNumber") == n }
	}
	tests := []struct {
		name     string
		inject   func(*injector)
		body     func() io.Reader
		ctx      func(t *testing.T) context.Context
		opts     cas.PutOptions
		key      string // default h.Key()
		want     error
		complete int64 // CompleteMultipartUpload requests expected
	}{
		{name: "part rejected", inject: func(in *injector) { in.set("UploadPart", 403, "AccessDenied", partN("3")) }},
		{name: "part BadDigest", inject: func(in *injector) { in.set("UploadPart", 400, "BadDigest", partN("5")) }, want: cas.ErrDigestMismatch},
		{name: "complete fails", inject: func(in *injector) { in.set("CompleteMultipartUpload", 400, "InvalidPart", nil) }, complete: 1},
		{name: "complete 409 conflict", inject: func(in *injector) { in.set("CompleteMultipartUpload", 409, "ConditionalRequestConflict", nil) }, want: cas.ErrExists, complete: 1},
		{name: "local digest mismatch", key: "legacy/digest", opts: cas.PutOptions{SHA256: wrong}, want: cas.ErrDigestMismatch},
		{name: "source fails midway", body: func() io.Reader {
			return io.MultiReader(bytes.NewReader(p[:100<<10]), iotestErrReader{})
		}},
		{name: "source too short", body: func() io.Reader { return bytes.NewReader(p[:250<<10]) }, want: io.ErrUnexpectedEOF},
		{name: "source too long", body: func() io.Reader { return bytes.NewReader(append(p[:len(p):len(p)], 'x')) }},
		{name: "source too long, no digest", key: "legacy/long", opts: cas.PutOptions{}, body: func() io.Reader { return bytes.NewReader(append(p[:len(p):len(p)], 'x')) }},
		{name: "context cancelled midway", ctx: func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			t.Cleanup(cancel)
			cancelAt.Store(&cancel)
			return ctx
		}, body: func() io.Reader { return &cancelReader{r: bytes.NewReader(p), after: 100 << 10, cancel: &cancelAt} }, want: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, s, in := newInjected(t, opts...)
			if tc.inject != nil {
				tc.inject(in)
			}
			body := io.Reader(bytes.NewReader(p))
			if tc.body != nil {
				body = tc.body()
			}
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			key := h.Key()
			if tc.key != "" {
				key = tc.key
			} else if tc.opts.SHA256.IsZero() {
				tc.opts.SHA256 = h
			}
			tc.opts.IfAbsent = true
			// Through the checked layer, as a Store calls it: sizes and
			// the digest are its checks, a failed read aborts the upload.
			err := cas.Checked(b).Put(ctx, key, body, int64(len(p)), tc.opts)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			require.EqualValues(t, 1, s.Requests("CreateMultipartUpload"))
			require.EqualValues(t, 1, s.Requests("AbortMultipartUpload"), "the upload is aborted")
			require.Equal(t, tc.complete, s.Requests("CompleteMultipartUpload"))
			require.Zero(t, s.OpenUploads(t), "no upload is left open")
			require.Empty(t, s.ObjectKeys(t), "nothing is stored")
		})
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// cancelReader calls cancel once more than after bytes have been read.
type cancelReader struct {
	r      io.Reader
	n      int
	after  int
	cancel *atomic.Pointer[context.CancelFunc]
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n > c.after {
		(*c.cancel.Load())()
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestPutCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := b.Put(ctx, "k", strings.NewReader("x"), 1, cas.PutOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, s.Requests("PutObject"))
}

// TestOptionsRejectNonsense: an option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	testutil.RequireOptionPanics(t, []testutil.BadOption{
		{Want: "s3store: WithPartSize(0)", Make: func() { s3store.WithPartSize(0) }},
		{Want: "s3store: WithConcurrency(-1)", Make: func() { s3store.WithConcurrency(-1) }},
		{Want: "s3store: WithMultipartThreshold(-5)", Make: func() { s3store.WithMultipartThreshold(-5) }},
		{Want: "s3store: WithOpTimeout(0s)", Make: func() { s3store.WithOpTimeout(0) }},
		{Want: "s3store: WithAttemptTimeout(-1s)", Make: func() { s3store.WithAttemptTimeout(-time.Second) }},
		{Want: "s3store: WithStallTimeout(0s)", Make: func() { s3store.WithStallTimeout(0) }},
		{Want: "s3store: WithCompleteTimeout(0s)", Make: func() { s3store.WithCompleteTimeout(0) }},
		{Want: "s3store: WithCompleteTimeout(-1m0s)", Make: func() { s3store.WithCompleteTimeout(-time.Minute) }},
	})
	// The edges of each range are accepted, and a Put works with them.
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket, s3store.WithPartSize(1), s3store.WithConcurrency(1), s3store.WithMultipartThreshold(0))
	p := testutil.Bytes(9, 8)
	require.NoError(t, b.Put(t.Context(), "k", bytes.NewReader(p), int64(len(p)), cas.PutOptions{}))
	require.Equal(t, p, readAll(t, b, "k"))
	require.EqualValues(t, 8, s.Requests("UploadPart"), "eight parts of one byte")
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestMultipartReadAheadIsBounded holds every UploadPart at the server and
// checks that Put reads no more of the source than concurrency parts: the
// memory a multipart upload holds is bounded by concurrency x part size,
// whatever the blob size.
func TestMultipartReadAheadIsBounded(t *testing.T) {
	t.Parallel()
	const partSize, concurrency = 64 << 10, 2
	release := make(chan struct{})
	var held atomic.Int32
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s3test.Operation(r) == "UploadPart" {
				held.Add(1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	s := s3test.New(t, s3test.WithMiddleware(hold))
	b := s3store.New(s.Client, s.Bucket, s3store.WithMultipartThreshold(partSize), s3store.WithPartSize(partSize), s3store.WithConcurrency(concurrency))
	p := testutil.Bytes(10, 2<<20)
	src := &countingReader{r: bytes.NewReader(p)}
	done := make(chan error, 1)
	go func() { done <- b.Put(t.Context(), "big", src, int64(len(p)), cas.PutOptions{}) }()

	require.Eventually(t, func() bool { return held.Load() == concurrency }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // give an unbounded reader time to run ahead
	require.LessOrEqual(t, src.n.Load(), int64(concurrency*partSize), "read ahead of the uploads in flight")
	require.EqualValues(t, concurrency, held.Load(), "no more parts than WithConcurrency in flight")
	close(release)
	require.NoError(t, <-done)
	require.EqualValues(t, len(p), src.n.Load())
	require.True(t, bytes.Equal(p, readAll(t, b, "big")))
}
