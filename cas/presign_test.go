package cas_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
)

// presigning adds a Presigner to a Backend: it records the calls that
// reach it and returns url (or err).
type presigning struct {
	cas.Backend
	url   string
	err   error
	calls int
}

func (p *presigning) PresignGet(_ context.Context, key string, _ cas.PresignOptions) (string, error) {
	p.calls++
	return p.url + key, p.err
}

// stagerPresigning is a presigning Backend that is also a Stager.
type stagerPresigning struct {
	*presigning
	cas.Stager
}

// TestCheckedPresigner: the checked layer is a Presigner exactly when its
// Backend is, with or without Stager, stays one when wrapped again,
// checks options, keys and context before the Backend is called, and
// refuses a URL that is not absolute.
func TestCheckedPresigner(t *testing.T) {
	t.Parallel()
	fs, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	ok := cas.PresignOptions{Expires: time.Minute, ContentType: "image/png"}

	mem := &presigning{Backend: memstore.New(), url: "https://s3.example/b/"}
	both := stagerPresigning{presigning: &presigning{Backend: fs, url: "https://s3.example/b/"}, Stager: fs}
	for name, tc := range map[string]struct {
		b              cas.Backend
		stager, signer bool
		rec            *presigning
	}{
		"memstore":           {b: memstore.New()},
		"fsstore":            {b: fs, stager: true},
		"memstore+presigner": {b: mem, signer: true, rec: mem},
		"fsstore+presigner":  {b: both, stager: true, signer: true, rec: both.presigning},
	} {
		t.Run(name, func(t *testing.T) {
			c := cas.Checked(tc.b)
			require.Same(t, c, cas.Checked(c), "Checked is idempotent")
			_, isStager := c.(cas.Stager)
			require.Equal(t, tc.stager, isStager, "Stager")
			ps, isSigner := c.(cas.Presigner)
			require.Equal(t, tc.signer, isSigner, "Presigner")
			if !isSigner {
				return
			}
			key := cas.SumBytes([]byte("x")).Key()
			u, err := ps.PresignGet(t.Context(), key, ok)
			require.NoError(t, err)
			require.Equal(t, "https://s3.example/b/"+key, u)
			require.Equal(t, 1, tc.rec.calls)

			for _, bad := range []cas.PresignOptions{{}, {Expires: -1}, {Expires: time.Minute, ContentType: "a/b\r\nX: y"},
				{Expires: time.Minute, ContentDisposition: "attachment\x7f"}, {Expires: time.Minute, CacheControl: "é"},
				{Expires: time.Minute, SignedAt: time.Now().Add(2 * time.Minute)},
				{Expires: time.Minute, SignedAt: time.Now().Add(-time.Minute - time.Second)}} {
				_, err := ps.PresignGet(t.Context(), key, bad)
				require.ErrorIs(t, err, cas.ErrInvalidPresign, "%+v", bad)
			}
			_, err = ps.PresignGet(t.Context(), "", ok)
			require.ErrorIs(t, err, cas.ErrInvalidKey)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err = ps.PresignGet(ctx, key, ok)
			require.ErrorIs(t, err, context.Canceled)
			require.Equal(t, 1, tc.rec.calls, "refused before the Backend is called")

			_, err = ps.PresignGet(t.Context(), key, cas.PresignOptions{Expires: time.Minute, SignedAt: time.Now().Add(-30 * time.Second)})
			require.NoError(t, err, "dated in the past, still valid")
			require.Equal(t, 2, tc.rec.calls)

			tc.rec.url = "/relative/"
			_, err = ps.PresignGet(t.Context(), key, ok)
			require.ErrorContains(t, err, "not an absolute URL")
		})
	}
}
