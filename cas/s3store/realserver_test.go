package s3store_test

// Tests against a real S3-compatible server process (CI starts SeaweedFS,
// see .ci/start-servers.sh; testutil.NewRealS3 locates it through
// CASA_TEST_S3_ENDPOINT), and the tests of behaviour that must hold on both
// it and the in-process gofakes3 server.

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/castest"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// TestConformanceRealS3 runs the conformance suite against the real
// server, each case under a key prefix of its own in the shared bucket.
func TestConformanceRealS3(t *testing.T) {
	t.Parallel()
	testutil.NewRealS3(t) // skip here, not in every case, when there is no server
	castest.Run(t, func(t *testing.T) cas.Backend {
		s := testutil.NewRealS3(t)
		return s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix(s.Prefix))
	})
}

// minPartSize is S3's minimum size of a multipart upload's parts (but the
// last). Real servers enforce it at CompleteMultipartUpload
// (EntityTooSmall); gofakes3 does not.
const minPartSize = 5 << 20

// TestConformanceRealS3Multipart runs the suite with every Put over 1 KiB
// a multipart upload (of one part: the suite's blobs are smaller than
// S3's minimum part size).
func TestConformanceRealS3Multipart(t *testing.T) {
	t.Parallel()
	testutil.NewRealS3(t) // skip here, not in every case, when there is no server
	castest.Run(t, func(t *testing.T) cas.Backend {
		s := testutil.NewRealS3(t)
		return s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix(s.Prefix),
			s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(minPartSize))
	})
}

// TestRealS3MultipartParts uploads blobs of several minimum-size parts
// (the last one shorter) to the real server, create-only and verified, and
// reads them back whole and from an offset.
func TestRealS3MultipartParts(t *testing.T) {
	t.Parallel()
	s := testutil.NewRealS3(t)
	b := s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix(s.Prefix),
		s3store.WithMultipartThreshold(minPartSize), s3store.WithPartSize(minPartSize), s3store.WithConcurrency(2))
	store := cas.New(b)
	ctx := t.Context()
	data := testutil.Bytes(11, 2*minPartSize+12345)
	res, err := store.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.Equal(t, data, readAll(t, b, res.Hash.Key()))
	obj, err := b.Open(ctx, res.Hash.Key())
	require.NoError(t, err)
	defer obj.Close()
	_, err = obj.Seek(minPartSize+7, io.SeekStart)
	require.NoError(t, err)
	p, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, data[minPartSize+7:], p)

	// Create-only: a second multipart upload of the key fails with ErrExists.
	err = b.Put(ctx, res.Hash.Key(), bytes.NewReader(data), int64(len(data)), cas.PutOptions{IfAbsent: true})
	require.ErrorIs(t, err, cas.ErrExists)
}

// s3Server is an S3 endpoint, an existing bucket on it and a key prefix of
// the test's own.
type s3Server struct {
	endpoint, bucket, prefix string
}

// s3Servers returns the in-process gofakes3 server and the real server
// (skipped, or failed under CI=true, when there is none).
func s3Servers() map[string]func(t *testing.T) s3Server {
	return map[string]func(t *testing.T) s3Server{
		"gofakes3": func(t *testing.T) s3Server {
			s := s3test.New(t)
			return s3Server{endpoint: s.URL, bucket: s.Bucket, prefix: ""}
		},
		"real": func(t *testing.T) s3Server {
			s := testutil.NewRealS3(t)
			return s3Server{endpoint: s.Endpoint, bucket: s.Bucket, prefix: s.Prefix}
		},
	}
}

// logBuffer is an SDK logger that keeps every line.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Logf(c logging.Classification, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "%s "+format+"\n", append([]any{c}, v...)...)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

const checksumNoise = "Response has no supported checksum"

// TestReadsLogNoChecksumNoise: an application's client with the SDK's
// default response checksum validation (WhenSupported) and a logger (the
// SDK's default writes to stderr) gets no "Response has no supported
// checksum. Not validating response payload." line per read from
// s3store. The control GET through the same client without s3store's
// option proves that the server provokes the line and the logger catches
// it.
func TestReadsLogNoChecksumNoise(t *testing.T) {
	t.Parallel()
	for name, server := range s3Servers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := server(t)
			logs := &logBuffer{}
			client := testutil.NewRealS3Client(srv.endpoint, func(o *s3.Options) {
				o.Logger = logs
				o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
			})
			b := s3store.New(client, srv.bucket, s3store.WithKeyPrefix(srv.prefix))
			ctx := t.Context()
			data := testutil.Bytes(7, 100<<10)
			key := cas.SumBytes(data).Key()
			require.NoError(t, b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
			require.Equal(t, data, readAll(t, b, key))
			obj, err := b.Open(ctx, key)
			require.NoError(t, err)
			_, err = obj.Seek(1000, io.SeekStart)
			require.NoError(t, err)
			p, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.Equal(t, data[1000:], p)
			require.NoError(t, obj.Close())
			require.NotContains(t, logs.String(), checksumNoise, "s3store's reads log nothing")

			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.bucket, Key: aws.String(srv.prefix + key), Range: aws.String("bytes=0-")})
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, out.Body)
			out.Body.Close()
			require.Contains(t, logs.String(), checksumNoise, "control: a plain GET through the same client logs the line")
		})
	}
}

// TestCheckBucket: CheckBucket accepts the bucket that exists and, for a
// missing one, fails with an error that names the bucket and wraps
// cas.ErrNotFound.
func TestCheckBucket(t *testing.T) {
	t.Parallel()
	for name, server := range s3Servers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := server(t)
			client := testutil.NewRealS3Client(srv.endpoint)
			require.NoError(t, s3store.New(client, srv.bucket).CheckBucket(t.Context()))

			missing := "casa-missing-" + strings.TrimSuffix(strings.ReplaceAll(srv.prefix, "/", ""), "-")
			if srv.prefix == "" {
				missing = "casa-missing-bucket"
			}
			err := s3store.New(client, missing).CheckBucket(t.Context())
			require.ErrorIs(t, err, cas.ErrNotFound)
			require.ErrorContains(t, err, `"`+missing+`"`)
			t.Logf("%s: %v", name, err)
		})
	}
}

// TestPutRepairsCorruptMarker: on the real server and on gofakes3, an
// object whose encoding marker is damaged (a decoded size that is no
// number: Stat fails with cas.ErrCorrupt) is repaired by a Store.Put of
// the blob's bytes, plain or compressed: the replacing PutObject replaces
// the metadata too.
func TestPutRepairsCorruptMarker(t *testing.T) {
	t.Parallel()
	type server struct {
		client         *s3.Client
		bucket, prefix string
	}
	servers := map[string]func(t *testing.T) server{
		"gofakes3": func(t *testing.T) server {
			s := s3test.New(t)
			return server{s.Client, s.Bucket, ""}
		},
		"real": func(t *testing.T) server {
			s := testutil.NewRealS3(t)
			return server{s.Client, s.Bucket, s.Prefix}
		},
	}
	data := testutil.Text(60, 300<<10)
	h := cas.SumBytes(data)
	for name, newServer := range servers {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compress=%v", name, compress), func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				srv := newServer(t)
				b := s3store.New(srv.client, srv.bucket, s3store.WithKeyPrefix(srv.prefix))
				full := srv.prefix + h.Key()
				_, err := srv.client.PutObject(ctx, &s3.PutObjectInput{
					Bucket: &srv.bucket, Key: &full, Body: bytes.NewReader([]byte("damaged")),
					Metadata: map[string]string{"casa-encoding": cas.EncodingZstd, "casa-decoded-size": "lost"},
				})
				require.NoError(t, err)
				_, err = b.Stat(ctx, h.Key())
				require.ErrorIs(t, err, cas.ErrCorrupt)

				opts := []cas.Option{cas.WithTempDir(t.TempDir())}
				if compress {
					opts = append(opts, cas.WithCompression(cas.Compression{}))
				}
				res, err := cas.New(b, opts...).Put(ctx, bytes.NewReader(data))
				require.NoError(t, err)
				require.False(t, res.Deduplicated)
				info, err := b.Stat(ctx, h.Key())
				require.NoError(t, err)
				require.EqualValues(t, len(data), info.Size)
				if !compress {
					require.Empty(t, info.Encoding, "the marker went with the damaged object")
				}
				plain := cas.New(b)
				require.NoError(t, plain.Verify(ctx, h))
			})
		}
	}
}
