package s3store

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/casa-go/casa/cas"
)

// MaxPresignExpires is the longest lifetime of a presigned URL: SigV4's
// limit (X-Amz-Expires at most 604800 seconds, 7 days).
const MaxPresignExpires = 7 * 24 * time.Hour

var _ cas.Presigner = (*Backend)(nil)

// PresignGet implements cas.Presigner: a SigV4 query-signed GetObject URL
// (s3.PresignClient) for key, valid for opts.Expires (at most
// MaxPresignExpires, rounded down to whole seconds, at least one), whose
// response carries opts' headers through the response-content-type,
// response-content-disposition and response-cache-control parameters,
// which the signature covers. It is computed locally: no request is sent,
// and key need not exist. With opts.SignedAt the URL is dated then
// (X-Amz-Date, whole seconds) and works until SignedAt+Expires.
//
// The URL is signed with the client's credentials: with temporary
// credentials (an IAM role, STS) it stops working when they expire, even
// before opts.Expires. A client whose endpoint is reachable only from
// the application (an internal address) gives URLs browsers cannot reach:
// presign through a client configured with the public endpoint.
func (b *Backend) PresignGet(ctx context.Context, key string, opts cas.PresignOptions) (string, error) {
	full, err := b.objectKey(key)
	if err != nil {
		return "", err
	}
	exp := opts.Expires.Truncate(time.Second)
	switch {
	case exp < time.Second:
		return "", fmt.Errorf("s3store: presign %q: Expires %v: %w: want at least 1s", key, opts.Expires, cas.ErrInvalidPresign)
	case exp > MaxPresignExpires:
		return "", fmt.Errorf("s3store: presign %q: Expires %v: %w: want at most %v", key, opts.Expires, cas.ErrInvalidPresign, MaxPresignExpires)
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: &full}
	if opts.ContentType != "" {
		in.ResponseContentType = aws.String(opts.ContentType)
	}
	if opts.ContentDisposition != "" {
		in.ResponseContentDisposition = aws.String(opts.ContentDisposition)
	}
	if opts.CacheControl != "" {
		in.ResponseCacheControl = aws.String(opts.CacheControl)
	}
	popts := []func(*s3.PresignOptions){s3.WithPresignExpires(exp)}
	if !opts.SignedAt.IsZero() {
		// The SDK signs at now; sign at SignedAt instead, so that one
		// window gives one URL.
		at := opts.SignedAt.UTC().Truncate(time.Second)
		popts = append(popts, func(o *s3.PresignOptions) {
			o.Presigner = signedAt{s: v4.NewSigner(func(so *v4.SignerOptions) {
				so.Logger = b.client.Options().Logger
				so.DisableURIPathEscaping = true // as the SDK's own S3 presigner
			}), at: at}
		})
	}
	req, err := s3.NewPresignClient(b.client).PresignGetObject(ctx, in, popts...)
	if err != nil {
		return "", fmt.Errorf("s3store: presign %q: %w", key, err)
	}
	return req.URL, nil
}

// signedAt is the SDK's SigV4 presigner with the signing time fixed.
type signedAt struct {
	s  *v4.Signer
	at time.Time
}

// PresignHTTP implements s3.HTTPPresignerV4.
func (p signedAt) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string,
	_ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.s.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.at, optFns...)
}
