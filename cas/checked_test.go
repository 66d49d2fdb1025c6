package cas_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
)

// shortBackend is a memstore whose Objects end one byte early, and whose
// Put records the bytes it was given before the body failed.
type shortBackend struct {
	*memstore.Backend
	got []byte // what the last Put read
}

type shortObject struct {
	*bytes.Reader
	info cas.Info
}

func (o *shortObject) Info() cas.Info { return o.info }
func (o *shortObject) Close() error   { return nil }

func (b *shortBackend) Open(ctx context.Context, key string) (cas.Object, error) {
	obj, err := b.Backend.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	p, _ := io.ReadAll(obj)
	return &shortObject{Reader: bytes.NewReader(p[:len(p)-1]), info: obj.Info()}, nil
}

func (b *shortBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	p, err := io.ReadAll(r)
	b.got = p
	if err != nil {
		return err
	}
	return b.Backend.Put(ctx, key, bytes.NewReader(p), size, opts)
}

func TestCheckedExactReads(t *testing.T) {
	t.Parallel()
	b := &shortBackend{Backend: memstore.New()}
	require.NoError(t, b.Backend.Put(t.Context(), "legacy/x", strings.NewReader("hello"), 5, cas.PutOptions{}))
	obj, err := cas.Checked(b).Open(t.Context(), "legacy/x")
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a body that ends before Info().Size is no silent short read")
	require.Equal(t, "hell", string(got))
}

// TestCheckedWithholdsLastBytes: a Backend never receives a complete body
// that is too long or does not match its digest: the Read that would
// deliver the last bytes fails instead.
func TestCheckedWithholdsLastBytes(t *testing.T) {
	t.Parallel()
	p := bytes.Repeat([]byte("abcdefgh"), 10_000)
	wrong := cas.SumBytes([]byte("other"))
	for name, tc := range map[string]struct {
		r    io.Reader
		size int64
		opts cas.PutOptions
	}{
		"digest":   {bytes.NewReader(p), int64(len(p)), cas.PutOptions{SHA256: wrong}},
		"blob key": {bytes.NewReader(p), int64(len(p)), cas.PutOptions{}},
		"too long": {bytes.NewReader(append(p[:len(p):len(p)], 'x')), int64(len(p)), cas.PutOptions{}},
	} {
		b := &shortBackend{Backend: memstore.New()}
		key := "legacy/x"
		if name == "blob key" {
			key = wrong.Key()
		}
		err := cas.Checked(b).Put(t.Context(), key, tc.r, tc.size, tc.opts)
		require.Error(t, err, name)
		if name != "too long" {
			require.ErrorIs(t, err, cas.ErrDigestMismatch, name)
		}
		require.Less(t, len(b.got), len(p), "%s: the backend never saw the whole body", name)
		_, err = b.Stat(t.Context(), key)
		require.ErrorIs(t, err, cas.ErrNotFound, name)
	}
}

func TestCheckedIdempotentAndStager(t *testing.T) {
	t.Parallel()
	m := memstore.New()
	c := cas.Checked(m)
	require.Same(t, c, cas.Checked(c), "wrapping twice is a no-op")
	_, isStager := c.(cas.Stager)
	require.False(t, isStager, "a checked memstore is no Stager")
}

// TestCheckedSeekRestartsDigest: a Backend that rewinds the body (the AWS
// SDK does, to retry) is verified over the bytes of its last pass.
func TestCheckedSeekRestartsDigest(t *testing.T) {
	t.Parallel()
	p := bytes.Repeat([]byte("0123456789"), 1000)
	b := &rewinder{Backend: memstore.New()}
	require.NoError(t, cas.Checked(b).Put(t.Context(), cas.SumBytes(p).Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{}))
	require.True(t, b.rewound)
}

// rewinder reads half of a seekable body, rewinds it, and reads it all.
type rewinder struct {
	*memstore.Backend
	rewound bool
}

func (b *rewinder) Put(ctx context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	rs := r.(io.ReadSeeker)
	if _, err := io.ReadFull(rs, make([]byte, size/2)); err != nil {
		return err
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return err
	}
	b.rewound = true
	return b.Backend.Put(ctx, key, rs, size, opts)
}
