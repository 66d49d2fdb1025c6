package cas

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Presigner is an optional interface of a Backend that can hand out a URL
// from which anyone who holds it can GET one object directly from the
// storage service, for a limited time, without the application in the path
// (s3store: a presigned GetObject). A server redirects a large download to
// such a URL so that its bytes leave the application's network
// (cashttp.WithRedirect).
//
// PresignGet makes the URL without asking the service anything: it does
// not check that key exists (a GET of the URL of a missing key fails at the
// service), and it is cheap enough to call per request. opts.Expires must
// be positive; the URL is refused by the service once it has passed. The
// response to a GET of the URL carries the header values of opts where
// they are set. A Backend whose URLs cannot carry them, or cannot expire,
// must not implement Presigner.
//
// Through Checked, a Backend is a Presigner exactly when it is one; the
// checked layer validates the key, the context and opts (ErrInvalidPresign)
// before the Backend is called, and the URL it returns (absolute).
type Presigner interface {
	PresignGet(ctx context.Context, key string, opts PresignOptions) (string, error)
}

// PresignOptions tune a PresignGet: how long the URL works, and the
// response headers its GET carries (S3: the response-content-type,
// response-content-disposition and response-cache-control parameters,
// which the signature covers). Header values must be printable ASCII
// (no control characters, no CR or LF); empty means the service's own.
type PresignOptions struct {
	Expires            time.Duration // how long the URL is valid: positive
	ContentType        string        // Content-Type of the response
	ContentDisposition string        // Content-Disposition of the response
	CacheControl       string        // Cache-Control of the response

	// SignedAt, when set, is the time the URL's validity counts from
	// (S3: X-Amz-Date) instead of now: it works until SignedAt+Expires.
	// The same SignedAt, key and options give the same URL, so a server
	// that rounds the time down to a window hands out one URL per window
	// and browsers can reuse their cached response. It must not be more
	// than a minute ahead of now, and SignedAt+Expires must be after now.
	SignedAt time.Time
}

// maxPresignSkew is how far ahead of now a SignedAt may be.
const maxPresignSkew = time.Minute

// ErrInvalidPresign is wrapped by the checked layer's refusal of
// PresignOptions that no URL may carry: an Expires that is not positive,
// or a header value with a control or non-ASCII character.
var ErrInvalidPresign = errors.New("cas: invalid presign options")

// check reports why opts cannot be presigned, or nil.
func (opts PresignOptions) check() error {
	if opts.Expires <= 0 {
		return fmt.Errorf("%w: Expires %v: want a positive duration", ErrInvalidPresign, opts.Expires)
	}
	if !opts.SignedAt.IsZero() {
		now := time.Now()
		if opts.SignedAt.After(now.Add(maxPresignSkew)) {
			return fmt.Errorf("%w: SignedAt %v is in the future", ErrInvalidPresign, opts.SignedAt)
		}
		if !opts.SignedAt.Add(opts.Expires).After(now) {
			return fmt.Errorf("%w: SignedAt %v + Expires %v has passed: the URL would be dead", ErrInvalidPresign, opts.SignedAt, opts.Expires)
		}
	}
	for _, f := range []struct{ name, v string }{
		{"ContentType", opts.ContentType},
		{"ContentDisposition", opts.ContentDisposition},
		{"CacheControl", opts.CacheControl},
	} {
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c < 0x20 || c > 0x7e {
				return fmt.Errorf("%w: %s %q: byte %#x at %d is not printable ASCII", ErrInvalidPresign, f.name, f.v, c, i)
			}
		}
	}
	return nil
}

// presignGet is PresignGet through the checked layer; c's Backend must be
// a Presigner.
func (c *checked) presignGet(ctx context.Context, key string, opts PresignOptions) (string, error) {
	if err := checkRead(ctx, key); err != nil {
		return "", err
	}
	if err := opts.check(); err != nil {
		return "", err
	}
	u, err := c.b.(Presigner).PresignGet(ctx, key, opts)
	if err != nil {
		return "", err
	}
	if p, perr := url.Parse(u); perr != nil || !p.IsAbs() || p.Host == "" {
		return "", fmt.Errorf("cas: presign %q: the backend returned %q, not an absolute URL", key, u)
	}
	return u, nil
}

// checkedPresigner is a checked Backend that is also a Presigner.
type checkedPresigner struct{ checked }

// PresignGet implements Presigner.
func (c *checkedPresigner) PresignGet(ctx context.Context, key string, opts PresignOptions) (string, error) {
	return c.presignGet(ctx, key, opts)
}

// checkedStagerPresigner is a checked Backend that is a Stager and a
// Presigner.
type checkedStagerPresigner struct{ checkedStager }

// PresignGet implements Presigner.
func (c *checkedStagerPresigner) PresignGet(ctx context.Context, key string, opts PresignOptions) (string, error) {
	return c.presignGet(ctx, key, opts)
}

var (
	_ Presigner = (*checkedPresigner)(nil)
	_ Presigner = (*checkedStagerPresigner)(nil)
	_ Stager    = (*checkedStagerPresigner)(nil)
)
