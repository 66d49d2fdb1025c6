package cas_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
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

// TestCheckedReadsHeldKeys: keys that CheckKey refuses for a write but that
// a Backend holds (written before casa) can be stated, opened and deleted
// through Checked; writes under them are still refused. Keys no Backend can
// hold are refused by every call. fsstore keeps refusing the keys its paths
// cannot address.
func TestCheckedReadsHeldKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memstore.New()
	c := cas.Checked(m)
	for _, key := range []string{
		"/uploads/a.pdf", "uploads//b.pdf", `C:\scans\c.pdf`, ".well-known/x", "Cas/readme.txt",
		"uploads/" + strings.Repeat("n", cas.MaxSegmentLen+1) + ".pdf", "trailing/",
	} {
		require.ErrorIs(t, cas.CheckKey(key), cas.ErrInvalidKey, key)
		require.NoError(t, m.Put(ctx, key, strings.NewReader(key), int64(len(key)), cas.PutOptions{}), key)

		info, err := c.Stat(ctx, key)
		require.NoError(t, err, key)
		require.EqualValues(t, len(key), info.Size, key)
		obj, err := c.Open(ctx, key)
		require.NoError(t, err, key)
		got, err := io.ReadAll(obj)
		require.NoError(t, err, key)
		require.NoError(t, obj.Close())
		require.Equal(t, key, string(got))

		require.ErrorIs(t, c.Put(ctx, key, strings.NewReader("x"), 1, cas.PutOptions{}), cas.ErrInvalidKey, "a write under %q is refused", key)
		require.NoError(t, c.Delete(ctx, key), key)
		_, err = m.Stat(ctx, key)
		require.ErrorIs(t, err, cas.ErrNotFound, "%q deleted", key)
	}
	for _, key := range []string{"", "\xff", strings.Repeat("k", cas.MaxKeyLen+1)} {
		_, err := c.Stat(ctx, key)
		require.ErrorIs(t, err, cas.ErrInvalidKey, "Stat %q", key)
		_, err = c.Open(ctx, key)
		require.ErrorIs(t, err, cas.ErrInvalidKey, "Open %q", key)
		require.ErrorIs(t, c.Delete(ctx, key), cas.ErrInvalidKey, "Delete %q", key)
	}

	fs, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	for _, key := range []string{"../escape", "/etc/passwd", "a//b", ".tmp/x"} {
		_, err := cas.Checked(fs).Stat(ctx, key)
		require.ErrorIs(t, err, cas.ErrInvalidKey, "fsstore refuses %q itself", key)
		require.ErrorIs(t, cas.Checked(fs).Delete(ctx, key), cas.ErrInvalidKey, "fsstore refuses %q itself", key)
	}
}

// TestCheckedStagedVerifiesCommit: a Staged got through Checked hashes its
// bytes, so a Commit under a blob key they do not hash to fails with
// ErrDigestMismatch and publishes nothing, and a Commit under a derived
// prefix must be a DerivedKey. Over fsstore, the Stager casa ships.
func TestCheckedStagedVerifiesCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fs, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	st, ok := cas.Checked(fs).(cas.Stager)
	require.True(t, ok)
	hello := cas.SumBytes([]byte("hello"))

	obj, err := st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("evil"))
	require.NoError(t, err)
	require.ErrorIs(t, obj.Commit(ctx, hello.Key()), cas.ErrDigestMismatch)
	_, err = fs.Stat(ctx, hello.Key())
	require.ErrorIs(t, err, cas.ErrNotFound, "nothing published")
	require.ErrorIs(t, cas.New(fs).Verify(ctx, hello), cas.ErrNotFound, "no blob to fail Verify")

	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("x"))
	require.NoError(t, err)
	require.ErrorIs(t, obj.Commit(ctx, cas.ThumbnailPrefix+"zzz"), cas.ErrInvalidKey)
	_, err = fs.Stat(ctx, cas.ThumbnailPrefix+"zzz")
	require.ErrorIs(t, err, cas.ErrNotFound, "nothing published")

	obj, err = st.Stage(ctx)
	require.NoError(t, err)
	_, err = obj.Write([]byte("hel"))
	require.NoError(t, err)
	_, err = obj.Write([]byte("lo"))
	require.NoError(t, err)
	require.NoError(t, obj.Commit(ctx, hello.Key()))
	require.NoError(t, cas.New(fs).Verify(ctx, hello))
	for info, err := range fs.List(ctx, "") {
		require.NoError(t, err)
		require.Equal(t, hello.Key(), info.Key, "only the verified Commit is stored")
	}
}

// lateReader is a caller's body that records Reads made after the caller
// saw Put return.
type lateReader struct {
	r        io.Reader
	returned atomic.Bool
	late     atomic.Int64
}

func (l *lateReader) Read(p []byte) (int, error) {
	if l.returned.Load() {
		l.late.Add(1)
	}
	return l.r.Read(p)
}

// earlyBackend reads a little of a Put's body and returns an error while a
// goroutine goes on reading the body, as net/http's transport can after an
// early response (a 412 to a create-only PUT).
type earlyBackend struct {
	*memstore.Backend
	drained chan error
}

func (b *earlyBackend) Put(_ context.Context, _ string, r io.Reader, _ int64, _ cas.PutOptions) error {
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 16)
		for {
			if _, err := r.Read(buf); err != nil {
				b.drained <- err
				return
			}
		}
	}()
	return fmt.Errorf("early response: %w", cas.ErrExists)
}

// TestCheckedPutDetachesBody: once a Put returns, the body its Backend was
// given reads nothing more from the caller's reader, and the Put's own
// outcome does not race with a goroutine the Backend left reading (run
// with -race).
func TestCheckedPutDetachesBody(t *testing.T) {
	t.Parallel()
	p := bytes.Repeat([]byte("abcdefgh"), 128<<10)
	for _, tc := range []struct {
		seekable bool
		key      string // a wrong digest makes the goroutine's last Read fail the body
	}{{false, cas.SumBytes(nil).Key()}, {true, cas.SumBytes(nil).Key()}, {false, cas.SumBytes(p).Key()}, {true, cas.SumBytes(p).Key()}} {
		seekable := tc.seekable
		b := &earlyBackend{Backend: memstore.New(), drained: make(chan error, 1)}
		lr := &lateReader{r: bytes.NewReader(p)}
		var body io.Reader = struct{ io.Reader }{lr}
		if seekable {
			body = struct {
				io.Reader
				io.Seeker
			}{lr, lr.r.(io.Seeker)}
		}
		err := cas.Checked(b).Put(t.Context(), tc.key, body, int64(len(p)), cas.PutOptions{})
		lr.returned.Store(true)
		require.ErrorIs(t, err, cas.ErrExists, "the backend's answer")
		select {
		case rerr := <-b.drained:
			require.Error(t, rerr, "the backend's goroutine is cut off")
		case <-time.After(10 * time.Second):
			t.Fatal("the backend's goroutine read on for 10s")
		}
		require.Zero(t, lr.late.Load(), "seekable %v, key %s: the caller's reader was read after Put returned", seekable, tc.key)
	}

	// The same with a plain body, which synchronises nothing with the test:
	// without the layer's lock, -race reports the goroutine's write of the
	// body's failure (the wrong digest) against the Put reading it.
	b := &earlyBackend{Backend: memstore.New(), drained: make(chan error, 1)}
	err := cas.Checked(b).Put(t.Context(), cas.SumBytes(nil).Key(), struct{ io.Reader }{bytes.NewReader(p)}, int64(len(p)), cas.PutOptions{})
	require.ErrorIs(t, err, cas.ErrExists, "the backend's answer")
	require.Error(t, <-b.drained)
}

// stallReader yields its bytes, then returns (0, nil) forever.
type stallReader struct{ p []byte }

func (s *stallReader) Read(b []byte) (int, error) {
	n := copy(b, s.p)
	s.p = s.p[n:]
	return n, nil
}

// TestCheckedPutNoProgress: a body that returns no bytes and no error
// forever fails the Put with io.ErrNoProgress instead of spinning: at its
// end (where the layer checks for EOF), before its last bytes, and in the
// middle of a large body.
func TestCheckedPutNoProgress(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 1<<20)
	for name, tc := range map[string]struct {
		p    []byte
		size int64
	}{
		"at EOF":      {[]byte("hello"), 5},
		"before last": {[]byte("hel"), 5},
		"mid body":    {big[:1000], int64(len(big))},
	} {
		done := make(chan error, 1)
		go func() {
			done <- cas.Checked(memstore.New()).Put(t.Context(), "legacy/stall", &stallReader{p: tc.p}, tc.size, cas.PutOptions{})
		}()
		select {
		case err := <-done:
			require.ErrorIs(t, err, io.ErrNoProgress, name)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Put of a body that stalls did not return in 10s", name)
		}
	}
}

// FuzzCheckedKeys: through Checked, any key a Backend holds that is
// non-empty, at most MaxKeyLen bytes and valid UTF-8 can be stated, read
// and deleted, whatever CheckKey says of it; other keys are refused with
// ErrInvalidKey. A Put is refused for every key CheckKey refuses.
func FuzzCheckedKeys(f *testing.F) {
	for _, s := range []string{"/uploads/a.pdf", "uploads//b.pdf", `C:\scans\c.pdf`, ".well-known/x", "Cas/readme.txt", "", "\xff", "a/./b", "legacy/uuid"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ctx := context.Background()
		m := memstore.New()
		c := cas.Checked(m)
		require.NoError(t, m.Put(ctx, key, strings.NewReader("v"), 1, cas.PutOptions{}))
		held := key != "" && len(key) <= cas.MaxKeyLen && utf8.ValidString(key)
		_, err := c.Stat(ctx, key)
		if !held {
			require.ErrorIs(t, err, cas.ErrInvalidKey, "Stat %q", key)
			require.ErrorIs(t, c.Delete(ctx, key), cas.ErrInvalidKey, "Delete %q", key)
			return
		}
		require.NoError(t, err, "Stat %q", key)
		obj, err := c.Open(ctx, key)
		require.NoError(t, err, "Open %q", key)
		got, err := io.ReadAll(obj)
		require.NoError(t, err)
		require.NoError(t, obj.Close())
		require.Equal(t, "v", string(got))
		perr := c.Put(ctx, key, strings.NewReader("w"), 1, cas.PutOptions{})
		if cas.CheckKey(key) != nil {
			require.ErrorIs(t, perr, cas.ErrInvalidKey, "Put %q", key)
		}
		require.NoError(t, c.Delete(ctx, key), "Delete %q", key)
		_, err = m.Stat(ctx, key)
		require.ErrorIs(t, err, cas.ErrNotFound, "%q deleted", key)
	})
}
