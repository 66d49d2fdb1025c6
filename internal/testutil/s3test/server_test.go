package s3test_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/s3test"
)

func s3sum(b []byte) *string {
	s := sha256.Sum256(b)
	return aws.String(base64.StdEncoding.EncodeToString(s[:]))
}

func s3code(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	return ae.ErrorCode()
}

func s3put(ctx context.Context, s *s3test.Server, key string, body []byte, mod func(*s3.PutObjectInput)) error {
	in := &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}
	if mod != nil {
		mod(in)
	}
	_, err := s.Client.PutObject(ctx, in)
	return err
}

func s3get(t *testing.T, s *s3test.Server, key, rng string) []byte {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := s.Client.GetObject(t.Context(), in)
	require.NoError(t, err)
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	return b
}

func TestS3RoundTripAndCounters(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	require.Equal(t, s3test.DefaultBucket, s.Bucket)
	require.True(t, strings.HasPrefix(s.URL, "http://"))

	body := []byte("hello, content-addressed world")
	require.NoError(t, s3put(t.Context(), s, "a/b", body, nil))
	require.Equal(t, body, s3get(t, s, "a/b", ""))
	require.Equal(t, body[7:12], s3get(t, s, "a/b", "bytes=7-11"))

	require.EqualValues(t, 1, s.Requests("PutObject"))
	require.EqualValues(t, len(body), s.BytesIn("PutObject"))
	require.EqualValues(t, 2, s.Requests("GetObject"))
	require.EqualValues(t, len(body)+5, s.BytesOut("GetObject"))
	require.Equal(t, []string{"a/b"}, s.ObjectKeys(t))

	s.ResetStats()
	require.Zero(t, s.Requests("GetObject"))
	require.Zero(t, s.BytesOut("GetObject"))
}

func TestS3ConditionalPut(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	ifAbsent := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
	require.NoError(t, s3put(t.Context(), s, "k", []byte("first"), ifAbsent))
	err := s3put(t.Context(), s, "k", []byte("second"), ifAbsent)
	require.Equal(t, "PreconditionFailed", s3code(t, err))
	require.Equal(t, []byte("first"), s3get(t, s, "k", ""), "a failed create-only write must not change the object")
}

func TestS3ConcurrentCreateOnlyHasOneWinner(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	const writers = 16
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			body := []byte{byte(i)}
			var err error
			if i%2 == 0 {
				err = s3put(t.Context(), s, "race", body, func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
			} else {
				err = s3multipart(t.Context(), s, "race", [][]byte{body}, aws.String("*"))
			}
			if err == nil {
				wins.Add(1)
				return
			}
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, wins.Load())
}

// s3multipart runs a whole multipart upload; on failure of Complete it leaves
// the upload open, as a careless client would.
func s3multipart(ctx context.Context, s *s3test.Server, key string, parts [][]byte, ifNoneMatch *string) error {
	c, err := s.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(key), ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return err
	}
	var done []types.CompletedPart
	for i, p := range parts {
		n := int32(i + 1)
		out, err := s.Client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.Bucket), Key: aws.String(key), UploadId: c.UploadId, PartNumber: aws.Int32(n),
			Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p))), ChecksumSHA256: s3sum(p),
		})
		if err != nil {
			return err
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	}
	_, err = s.Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(key), UploadId: c.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}, IfNoneMatch: ifNoneMatch,
	})
	return err
}

func TestS3ConditionalCompleteMultipart(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	part1 := bytes.Repeat([]byte("x"), 5<<20)
	part2 := []byte("tail")
	require.NoError(t, s3multipart(t.Context(), s, "mp", [][]byte{part1, part2}, aws.String("*")))
	require.Equal(t, append(append([]byte{}, part1...), part2...), s3get(t, s, "mp", ""))

	err := s3multipart(t.Context(), s, "mp", [][]byte{[]byte("other")}, aws.String("*"))
	require.Equal(t, "PreconditionFailed", s3code(t, err))
	require.Equal(t, part2, s3get(t, s, "mp", "bytes=-4"), "the existing object must be untouched")
	require.Equal(t, 1, s.OpenUploads(t), "a rejected complete leaves the upload open until aborted, as on AWS")

	// Without the condition the complete overwrites, as on AWS.
	require.NoError(t, s3multipart(t.Context(), s, "mp", [][]byte{[]byte("other")}, nil))
	require.Equal(t, []byte("other"), s3get(t, s, "mp", ""))
}

func TestS3ChecksumSHA256(t *testing.T) {
	t.Parallel()
	body := []byte("checksummed bytes")
	wrong := sha256.Sum256([]byte("something else"))
	tests := []struct {
		name     string
		checksum *string
		code     string // "" for success
	}{
		{"correct", s3sum(body), ""},
		{"absent", nil, ""},
		{"mismatch", aws.String(base64.StdEncoding.EncodeToString(wrong[:])), "BadDigest"},
		{"not base64", aws.String("!!!not-base64!!!"), "InvalidRequest"},
		{"short digest", aws.String(base64.StdEncoding.EncodeToString(wrong[:31])), "InvalidRequest"},
		{"long digest", aws.String(base64.StdEncoding.EncodeToString(append(wrong[:], 0))), "InvalidRequest"},
		{"hex instead of base64", aws.String("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "InvalidRequest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := s3test.New(t)
			err := s3put(t.Context(), s, "obj", body, func(in *s3.PutObjectInput) { in.ChecksumSHA256 = tc.checksum })
			if tc.code == "" {
				require.NoError(t, err)
				require.Equal(t, body, s3get(t, s, "obj", ""))
				return
			}
			require.Equal(t, tc.code, s3code(t, err))
			var re interface{ HTTPStatusCode() int }
			require.ErrorAs(t, err, &re)
			require.Equal(t, http.StatusBadRequest, re.HTTPStatusCode())
			require.Empty(t, s.ObjectKeys(t), "a rejected object must not be stored")
		})
	}
}

func TestS3UploadPartChecksumMismatch(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	ctx := t.Context()
	c, err := s.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.Bucket), Key: aws.String("mp"), ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	require.NoError(t, err)
	_, err = s.Client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(s.Bucket), Key: aws.String("mp"), UploadId: c.UploadId, PartNumber: aws.Int32(1),
		Body: strings.NewReader("part one"), ContentLength: aws.Int64(8), ChecksumSHA256: s3sum([]byte("part 1!!")),
	})
	require.Equal(t, "BadDigest", s3code(t, err))
	parts, err := s.Client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(s.Bucket), Key: aws.String("mp"), UploadId: c.UploadId})
	require.NoError(t, err)
	require.Empty(t, parts.Parts, "a rejected part must not be stored")
}

func TestS3Latency(t *testing.T) {
	t.Parallel()
	const d = 30 * time.Millisecond
	s := s3test.New(t, s3test.WithLatency(d))
	start := time.Now()
	_, err := s.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("missing")})
	var nf *types.NotFound
	require.ErrorAs(t, err, &nf)
	require.GreaterOrEqual(t, time.Since(start), d)

	// A cancelled request does not wait out the latency.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	slow := s3test.New(t, s3test.WithLatency(time.Hour))
	start = time.Now()
	_, err = slow.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(slow.Bucket), Key: aws.String("k")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Minute)
}

func TestS3Middleware(t *testing.T) {
	t.Parallel()
	var seen []string
	var mu sync.Mutex
	fail := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, s3test.Operation(r))
			mu.Unlock()
			if s3test.Operation(r) == "DeleteObject" {
				s3test.WriteError(w, r, http.StatusForbidden, "AccessDenied", "no deletes today")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	s := s3test.New(t, s3test.WithMiddleware(fail), s3test.WithBucket("other-bucket"))
	require.Equal(t, "other-bucket", s.Bucket)
	require.NoError(t, s3put(t.Context(), s, "k", []byte("v"), nil))
	_, err := s.Client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("k")})
	require.Equal(t, "AccessDenied", s3code(t, err))
	require.Equal(t, []string{"k"}, s.ObjectKeys(t))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"PutObject", "DeleteObject"}, seen)
	require.EqualValues(t, 1, s.Requests("DeleteObject"), "the counter sees requests a middleware answers")
}

func TestS3Operation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, target string
		header         http.Header
		want           string
	}{
		{"GET", "/", nil, "ListBuckets"},
		{"GET", "/b?list-type=2&prefix=x", nil, "ListObjectsV2"},
		{"GET", "/b", nil, "ListObjects"},
		{"GET", "/b?uploads", nil, "ListMultipartUploads"},
		{"GET", "/b?location", nil, "GetBucketLocation"},
		{"GET", "/b?versioning", nil, "GetBucketVersioning"},
		{"HEAD", "/b", nil, "HeadBucket"},
		{"PUT", "/b", nil, "CreateBucket"},
		{"DELETE", "/b", nil, "DeleteBucket"},
		{"POST", "/b?delete", nil, "DeleteObjects"},
		{"POST", "/b", nil, "Unknown"},
		{"GET", "/b/k/with/slashes", nil, "GetObject"},
		{"GET", "/b/k?uploadId=1", nil, "ListParts"},
		{"HEAD", "/b/k", nil, "HeadObject"},
		{"PUT", "/b/k", nil, "PutObject"},
		{"PUT", "/b/k?partNumber=1&uploadId=x", nil, "UploadPart"},
		{"PUT", "/b/k", http.Header{"X-Amz-Copy-Source": {"/b/src"}}, "CopyObject"},
		{"DELETE", "/b/k", nil, "DeleteObject"},
		{"DELETE", "/b/k?uploadId=x", nil, "AbortMultipartUpload"},
		{"POST", "/b/k?uploads", nil, "CreateMultipartUpload"},
		{"POST", "/b/k?uploadId=x", nil, "CompleteMultipartUpload"},
		{"POST", "/b/k", nil, "Unknown"},
		{"PATCH", "/b/k", nil, "Unknown"},
		{"OPTIONS", "/", nil, "Unknown"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		for k, v := range tc.header {
			r.Header[k] = v
		}
		require.Equal(t, tc.want, s3test.Operation(r), "%s %s", tc.method, tc.target)
	}
}

func BenchmarkS3PutObject(b *testing.B) {
	s := s3test.New(b)
	body := bytes.Repeat([]byte("b"), 64<<10)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := s3put(b.Context(), s, "bench", body, func(in *s3.PutObjectInput) { in.ChecksumSHA256 = s3sum(body) }); err != nil {
			b.Fatal(err)
		}
	}
}

func TestS3Seed(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	s.Seed(t, "seeded/b", []byte("bee"))
	s.Seed(t, "seeded/a", []byte("a"))
	require.Equal(t, []string{"seeded/a", "seeded/b"}, s.ObjectKeys(t))
	require.Equal(t, []byte("bee"), s3get(t, s, "seeded/b", ""))
	head, err := s.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("seeded/a")})
	require.NoError(t, err)
	require.EqualValues(t, 1, aws.ToInt64(head.ContentLength))
	require.WithinDuration(t, time.Now(), aws.ToTime(head.LastModified), time.Minute)
	require.Zero(t, s.Requests("PutObject"), "Seed bypasses HTTP")
}

// FuzzS3Operation checks that S3Operation names every request, however
// odd its method, path or query, with one of the names it documents.
func FuzzS3Operation(f *testing.F) {
	known := map[string]bool{"Unknown": true}
	for _, op := range []string{"ListBuckets", "ListObjectsV2", "ListObjects", "ListMultipartUploads",
		"GetBucketLocation", "GetBucketVersioning", "HeadBucket", "CreateBucket", "DeleteBucket",
		"DeleteObjects", "GetObject", "ListParts", "HeadObject", "PutObject", "UploadPart", "CopyObject",
		"DeleteObject", "AbortMultipartUpload", "CreateMultipartUpload", "CompleteMultipartUpload"} {
		known[op] = true
	}
	f.Add("GET", "/b/k", "uploadId=1", "")
	f.Add("PUT", "/b/k", "partNumber=1&uploadId=x", "")
	f.Add("PUT", "//", "", "/src")
	f.Add("POST", "", "uploads&uploadId", "")
	f.Add("DELETE", "/b/", "uploadId=%zz", "")
	f.Add("get", "/../..", ";;;=&&", "")
	f.Fuzz(func(t *testing.T, method, path, query, copySource string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}
		if copySource != "" {
			r.Header.Set("X-Amz-Copy-Source", copySource)
		}
		if op := s3test.Operation(r); !known[op] {
			t.Fatalf("S3Operation(%q %q?%q) = %q", method, path, query, op)
		}
	})
}

func TestStartS3AndClose(t *testing.T) {
	t.Parallel()
	s, err := s3test.Start(s3test.WithBucket("started"))
	require.NoError(t, err)
	require.Equal(t, "started", s.Bucket)
	require.NoError(t, s3put(t.Context(), s, "k", []byte("v"), nil))
	require.Equal(t, []byte("v"), s3get(t, s, "k", ""))
	s.Close()
	_, err = s.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("k")})
	require.Error(t, err, "a closed server answers nothing")
}

// TestS3HangAndResume: a hung server accepts requests and never answers
// until Resume; Hang(ops...) holds only those operations.
func TestS3HangAndResume(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	require.NoError(t, s3put(t.Context(), s, "k", []byte("v"), nil))
	head := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		_, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("k")})
		return err
	}

	s.Hang()
	done := make(chan error, 1)
	go func() { done <- head(10 * time.Second) }()
	require.Eventually(t, func() bool { return s.Held() == 1 }, 5*time.Second, 5*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("a hung server answered: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	require.ErrorIs(t, head(100*time.Millisecond), context.DeadlineExceeded)
	require.Eventually(t, func() bool { return s.Held() == 1 }, 5*time.Second, 5*time.Millisecond,
		"a request whose client gave up is let go")

	s.Resume()
	require.NoError(t, <-done, "the held request is served at Resume")
	require.NoError(t, head(5*time.Second))
	require.Zero(t, s.Held())

	s.Hang("GetObject")
	require.NoError(t, head(5*time.Second), "HEAD is not held")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("k")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	s.Resume()
	require.Equal(t, []byte("v"), s3get(t, s, "k", ""))
}

// TestS3PutReplacesMetadata: a PutObject without conditions replaces the
// object's user metadata, as on AWS (gofakes3 alone carried the old
// object's over); one that keeps every key, and a failed one, change
// nothing else.
func TestS3PutReplacesMetadata(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := s3test.New(t)
	head := func(key string) map[string]string {
		t.Helper()
		out, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &key})
		require.NoError(t, err)
		return out.Metadata
	}
	withMeta := func(m map[string]string) func(*s3.PutObjectInput) {
		return func(in *s3.PutObjectInput) { in.Metadata = m }
	}
	require.NoError(t, s3put(ctx, s, "k", []byte("marked"), withMeta(map[string]string{"casa-encoding": "zstd", "other": "x"})))
	require.Equal(t, map[string]string{"casa-encoding": "zstd", "other": "x"}, head("k"))
	require.NoError(t, s3put(ctx, s, "k", []byte("other only"), withMeta(map[string]string{"other": "y"})))
	require.Equal(t, map[string]string{"other": "y"}, head("k"), "the marker is gone")
	require.NoError(t, s3put(ctx, s, "k", []byte("plain"), nil))
	require.Empty(t, head("k"))

	require.NoError(t, s3put(ctx, s, "k", []byte("marked"), withMeta(map[string]string{"casa-encoding": "zstd"})))
	err := s3put(ctx, s, "k", []byte("bad digest"), func(in *s3.PutObjectInput) { in.ChecksumSHA256 = s3sum([]byte("other")) })
	require.Error(t, err)
	require.Equal(t, map[string]string{"casa-encoding": "zstd"}, head("k"), "a failed replacement leaves the object")
}

// TestS3ReplacingPutIsAtomicToCreateOnly: a create-only PutObject
// (If-None-Match: *) of a key that exists throughout fails with 412, also
// while a PutObject without conditions replaces the object and drops its
// user metadata (which s3test does by a delete and a store). Before, the
// create-only write could land between the two and succeed, and the
// replacing write then carried its metadata over: a plain body with
// casa-encoding zstd, a corrupt blob that AWS never makes.
func TestS3ReplacingPutIsAtomicToCreateOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := s3test.New(t)
	marked := func(in *s3.PutObjectInput) { in.Metadata = map[string]string{"casa-encoding": "zstd"} }
	require.NoError(t, s3put(ctx, s, "k", []byte("marked"), marked))
	var (
		stop    atomic.Bool
		created atomic.Int64
		wg      sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				err := s3put(ctx, s, "k", []byte("create-only"), func(in *s3.PutObjectInput) {
					marked(in)
					in.IfNoneMatch = aws.String("*")
				})
				if err == nil {
					created.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(3 * time.Second)
	rounds := 0
	for ; time.Now().Before(deadline) && created.Load() == 0; rounds++ {
		// Replace the marked object by a plain one (metadata dropped),
		// then mark it again (metadata kept: no delete).
		require.NoError(t, s3put(ctx, s, "k", []byte("plain"), nil))
		require.NoError(t, s3put(ctx, s, "k", []byte("marked"), marked))
	}
	stop.Store(true)
	wg.Wait()
	require.Zero(t, created.Load(), "create-only writes of an existing key succeeded (in %d rounds)", rounds)
}
