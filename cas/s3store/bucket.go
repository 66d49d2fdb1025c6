package s3store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/casa-go/casa/cas"
)

// CheckBucket asks S3 whether the Backend's bucket exists and is
// accessible (HeadBucket), so that an application can fail at start-up
// with an error that names the bucket instead of at its first upload.
// A missing bucket (NoSuchBucket, NotFound, HTTP 404) is an error wrapping
// cas.ErrNotFound; any other failure (AccessDenied for credentials that may
// not use the bucket, or a service that answers a missing bucket with 403)
// wraps the SDK's error; a service that does not answer in time, like any
// metadata call, wraps cas.ErrUnavailable. Every error's text names the
// bucket.
func (b *Backend) CheckBucket(ctx context.Context) error {
	c := b.meta(ctx, "HeadBucket", "")
	defer c.end()
	_, err := b.client.HeadBucket(c.ctx, &s3.HeadBucketInput{Bucket: &b.bucket}, c.withAttemptTimeout)
	if err == nil {
		return nil
	}
	if tc, ok := c.timedOut(); ok {
		return fmt.Errorf("s3store: HeadBucket %q: %v: %w: %w (%v)", b.bucket, tc, cas.ErrUnavailable, context.DeadlineExceeded, err)
	}
	if bucketMissing(err) {
		return fmt.Errorf("s3store: bucket %q does not exist: %w: %w", b.bucket, cas.ErrNotFound, err)
	}
	return fmt.Errorf("s3store: bucket %q: %w", b.bucket, err)
}

// bucketMissing reports whether err from HeadBucket means that the bucket
// does not exist. HeadBucket responses have no body, so the SDK reports a
// 404 as types.NotFound or as a generic "NotFound" API error.
func bucketMissing(err error) bool {
	var (
		nf  *types.NotFound
		nsb *types.NoSuchBucket
		ae  smithy.APIError
		re  interface{ HTTPStatusCode() int }
	)
	switch {
	case errors.As(err, &nf), errors.As(err, &nsb):
		return true
	case errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchBucket" || ae.ErrorCode() == "NotFound"):
		return true
	case errors.As(err, &re) && re.HTTPStatusCode() == 404:
		return true
	}
	return false
}
