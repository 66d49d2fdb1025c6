package cas_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// TestPutContentType: a content type given to Put reaches the S3 object,
// through the memory spool and through the temp-file spool, and the first
// writer's type stays when the bytes are already stored.
func TestPutContentType(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	store := cas.New(s3store.New(srv.Client, srv.Bucket), cas.WithSpoolThreshold(1024))
	ctx := t.Context()
	contentType := func(h cas.Hash) string {
		out, err := srv.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(h.Key())})
		require.NoError(t, err)
		return aws.ToString(out.ContentType)
	}

	small := []byte("%PDF-1.7 a small datasheet")
	res, err := store.Put(ctx, bytes.NewReader(small), cas.ContentType("application/pdf"))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.Equal(t, "application/pdf", contentType(res.Hash))

	large := bytes.Repeat([]byte("G04 gerber*\n"), 1000) // over the spool threshold
	want := cas.SumBytes(large)
	res, err = store.PutVerified(ctx, want, bytes.NewReader(large), cas.ContentType("application/vnd.gerber"))
	require.NoError(t, err)
	require.Equal(t, "application/vnd.gerber", contentType(res.Hash))

	res, err = store.Put(ctx, bytes.NewReader(small), cas.ContentType("text/plain"))
	require.NoError(t, err)
	require.True(t, res.Deduplicated)
	require.Equal(t, "application/pdf", contentType(res.Hash), "a deduplicated Put keeps the first writer's type")
}

func TestPutInvalidContentType(t *testing.T) {
	t.Parallel()
	b := memstore.New()
	store := cas.New(b)
	for _, ct := range []string{"not a type", "text/html\r\nX-Evil: 1", "/", "text/"} {
		r := strings.NewReader("bytes")
		_, err := store.Put(t.Context(), r, cas.ContentType(ct))
		require.Error(t, err, "%q", ct)
		require.Contains(t, err.Error(), "invalid content type")
		require.Equal(t, 5, r.Len(), "nothing was read for %q", ct)
	}
	n := 0
	for _, err := range b.List(t.Context(), "") {
		require.NoError(t, err)
		n++
	}
	require.Zero(t, n, "nothing stored")
}
