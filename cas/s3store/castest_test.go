package s3store_test

import (
	"testing"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/castest"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	castest.Run(t, func(t *testing.T) cas.Backend {
		s := s3test.New(t)
		return s3store.New(s.Client, s.Bucket)
	})
}

// TestConformancePrefixMultipart runs the suite with a key prefix and a
// tiny multipart threshold, so that every Put of more than 1 KiB is a
// multipart upload of 16 KiB parts. (One run for both keeps the package's
// test time down; TestKeyPrefix and TestMultipart cover each alone.)
func TestConformancePrefixMultipart(t *testing.T) {
	t.Parallel()
	castest.Run(t, func(t *testing.T) cas.Backend {
		s := s3test.New(t)
		return s3store.New(s.Client, s.Bucket, s3store.WithKeyPrefix("tenant-a/"),
			s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(16<<10))
	})
}

func TestConformanceWithoutConditionalWrites(t *testing.T) {
	t.Parallel()
	castest.Run(t, func(t *testing.T) cas.Backend {
		s := s3test.New(t)
		return s3store.New(s.Client, s.Bucket, s3store.WithoutConditionalWrites())
	})
}
