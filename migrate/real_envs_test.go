package migrate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// realEnvs returns the configurations on real backends: the S3 test server
// (real aws-sdk-go-v2 client, gofakes3 over HTTP) for both sides, and legacy
// files on local disk migrating into a store on S3.
func realEnvs(t testing.TB) []env {
	t.Helper()
	s3b := s3store.New(s3test.New(t).Client, s3test.DefaultBucket)
	fs, err := fsstore.New(t.TempDir())
	require.NoError(t, err)
	s3dst := s3store.New(s3test.New(t).Client, s3test.DefaultBucket)
	return []env{
		{name: "s3", source: s3b, store: cas.New(s3b)},
		{name: "fs-to-s3", source: fs, store: cas.New(s3dst)},
	}
}
