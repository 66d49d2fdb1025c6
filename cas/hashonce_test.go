package cas_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"go/parser"
	"go/token"
	"hash"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// countingHash is a SHA-256 that counts the bytes it hashes.
type countingHash struct {
	hash.Hash
	n *atomic.Int64
}

func (c countingHash) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.Hash.Write(p)
}

// s3Headers records the headers of the PutObject and UploadPart requests
// an S3 test server receives.
type s3Headers struct {
	mu   sync.Mutex
	puts []http.Header
	part []http.Header
}

func (h *s3Headers) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		switch s3test.Operation(r) {
		case "PutObject":
			h.puts = append(h.puts, r.Header.Clone())
		case "UploadPart":
			h.part = append(h.part, r.Header.Clone())
		}
		h.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// TestPutHashesOnce: a Store.Put hashes the blob with SHA-256 exactly once
// on every backend (bytes hashed == blob size), whether it stages (fsstore),
// spools in memory or to a file, or uploads to S3 in one PutObject or in
// parts. Over S3 the precomputed digest is sent as x-amz-checksum-sha256
// with an UNSIGNED-PAYLOAD SigV4 hash (so neither SigV4 nor the SDK hashes
// the body), and the parts of a multipart upload carry a CRC32C and no
// SHA-256.
func TestPutHashesOnce(t *testing.T) {
	t.Parallel()
	const spool = 64 << 10
	type backend struct {
		name string
		new  func(t *testing.T) (cas.Backend, *s3Headers)
	}
	newS3 := func(opts ...s3store.Option) func(t *testing.T) (cas.Backend, *s3Headers) {
		return func(t *testing.T) (cas.Backend, *s3Headers) {
			h := &s3Headers{}
			srv := s3test.New(t, s3test.WithMiddleware(h.middleware))
			return s3store.New(srv.Client, srv.Bucket, opts...), h
		}
	}
	// backendtest's memstore and fsstore; s3store here records the request
	// headers, which backendtest's S3 case does not.
	var backends []backend
	for _, c := range []backendtest.Case{backendtest.Mem(), backendtest.FS(fsstore.WithoutSync())} {
		backends = append(backends, backend{c.Name, func(t *testing.T) (cas.Backend, *s3Headers) { return c.New(t), nil }})
	}
	backends = append(backends,
		backend{"s3store", newS3()},
		backend{"s3store multipart", newS3(s3store.WithMultipartThreshold(100<<10), s3store.WithPartSize(32<<10))},
	)
	for _, bc := range backends {
		for _, size := range []int{0, 1000, spool + 1, 300 << 10} {
			t.Run(bc.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				t.Parallel()
				b, hdr := bc.new(t)
				s := cas.New(b, cas.WithSpoolThreshold(spool), cas.WithTempDir(t.TempDir()))
				var hashed atomic.Int64
				cas.SetNewHash(s, func() hash.Hash { return countingHash{sha256.New(), &hashed} })
				p := bytes.Repeat([]byte{byte(size)}, size)
				want := cas.SumBytes(p)

				res, err := s.Put(t.Context(), bytes.NewReader(p))
				require.NoError(t, err)
				require.Equal(t, want, res.Hash)
				require.EqualValues(t, size, hashed.Load(), "Put hashes each byte exactly once")
				require.NoError(t, s.Verify(t.Context(), want))

				hashed.Store(0)
				_, err = s.PutVerified(t.Context(), want, bytes.NewReader(p))
				require.NoError(t, err)
				require.EqualValues(t, size, hashed.Load(), "PutVerified (deduplicated) hashes each byte exactly once")

				if hdr == nil {
					return
				}
				hdr.mu.Lock()
				defer hdr.mu.Unlock()
				sum := base64.StdEncoding.EncodeToString(want[:])
				if len(hdr.part) == 0 {
					require.Len(t, hdr.puts, 1, "one PutObject")
					h := hdr.puts[0]
					require.Equal(t, sum, h.Get("X-Amz-Checksum-Sha256"), "the precomputed SHA-256 is sent")
					require.Equal(t, "UNSIGNED-PAYLOAD", h.Get("X-Amz-Content-Sha256"), "SigV4 does not hash the body")
					require.Empty(t, h.Get("X-Amz-Trailer"), "the SDK adds no checksum of its own")
					for k := range h {
						if strings.HasPrefix(k, "X-Amz-Checksum-") {
							require.Equal(t, "X-Amz-Checksum-Sha256", k, "the SDK adds no checksum of its own")
						}
					}
					return
				}
				require.Greater(t, size, 100<<10, "only blobs above the threshold go in parts")
				require.Empty(t, hdr.puts)
				require.Len(t, hdr.part, (size+32<<10-1)/(32<<10))
				for i, h := range hdr.part {
					require.NotEmpty(t, h.Get("X-Amz-Checksum-Crc32c"), "part %d carries its CRC32C", i)
					require.Empty(t, h.Get("X-Amz-Checksum-Sha256"), "part %d carries no SHA-256", i)
					require.Equal(t, "UNSIGNED-PAYLOAD", h.Get("X-Amz-Content-Sha256"), "part %d: SigV4 does not hash the body", i)
				}
			})
		}
	}
}

// TestBackendsDoNotHash: no backend imports crypto/sha256 outside its
// tests; SHA-256 is the Store's and the checked layer's alone.
func TestBackendsDoNotHash(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"memstore", "fsstore", "s3store"} {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, names)
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
			require.NoError(t, err)
			for _, imp := range f.Imports {
				require.NotEqual(t, strconv.Quote("crypto/sha256"), imp.Path.Value, "%s imports crypto/sha256", name)
			}
		}
	}
}
