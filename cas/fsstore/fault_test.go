package fsstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
)

var errDiskFull = errors.New("injected: no space left on device")

// faultyStager wraps a real fsstore Backend; its staged objects fail the
// Write that crosses failAt bytes, as a full disk would.
type faultyStager struct {
	*fsstore.Backend
	failAt int64
}

func (f faultyStager) Stage(ctx context.Context) (cas.Staged, error) {
	st, err := f.Backend.Stage(ctx)
	if err != nil {
		return nil, err
	}
	return &faultyStaged{Staged: st, left: f.failAt}, nil
}

type faultyStaged struct {
	cas.Staged
	left int64
}

func (f *faultyStaged) Write(p []byte) (int, error) {
	if int64(len(p)) > f.left {
		n, _ := f.Staged.Write(p[:f.left])
		f.left = 0
		return n, errDiskFull
	}
	f.left -= int64(len(p))
	return f.Staged.Write(p)
}

func TestStorePutWriteFailure(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	for _, failAt := range []int64{0, 1, 300 << 10, 10 << 20, int64(len(p)) - 1} {
		s := cas.New(faultyStager{Backend: b, failAt: failAt})
		// Past the data, an endless reader that fails after 64 MiB more
		// shows that Put stops reading soon after a Write fails.
		_, err := s.Put(t.Context(), io.MultiReader(bytes.NewReader(p), &endless{limit: 64 << 20}))
		require.ErrorIs(t, err, errDiskFull, "write failing at %d", failAt)
		ok, err := s.Has(t.Context(), cas.SumBytes(p))
		require.NoError(t, err)
		require.False(t, ok, "nothing published after a failed write at %d", failAt)
		requireNoTemps(t, b)
	}
	res, err := cas.New(faultyStager{Backend: b, failAt: int64(len(p))}).Put(t.Context(), bytes.NewReader(p))
	require.NoError(t, err, "a write limit equal to the size is not hit")
	require.Equal(t, cas.SumBytes(p), res.Hash)
	require.NoError(t, cas.New(b).Verify(t.Context(), res.Hash))
}

var errReadTooFar = errors.New("read too far past a failed write")

// endless yields zeros, and fails after limit bytes.
type endless struct{ limit int }

func (r *endless) Read(p []byte) (int, error) {
	if r.limit <= 0 {
		return 0, errReadTooFar
	}
	n := min(len(p), r.limit)
	clear(p[:n])
	r.limit -= n
	return n, nil
}

// FuzzBackendKey runs real operations with arbitrary keys against a
// Backend whose root sits in an otherwise empty directory: a key is either
// rejected with ErrInvalidKey or stored inside the root and read back.
func FuzzBackendKey(f *testing.F) {
	for _, s := range []string{"a", "legacy/x", "../x", "a/../../x", "/abs", "a\\b", "a\x00", ".tmp/x", "cas/x", "", "x/", "a//b",
		"thumbnails/" + strings.Repeat("f", 64) + "_150.jpg", cas.SumBytes(nil).Key()} {
		f.Add(s)
	}
	parent := f.TempDir()
	b, err := fsstore.New(filepath.Join(parent, "root"), fsstore.WithoutSync())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ctx := t.Context()
		err := b.Put(ctx, key, strings.NewReader("v"), 1, cas.PutOptions{})
		if err != nil {
			require.ErrorIs(t, err, fsstore.ErrInvalidKey, "Put %q", key)
			_, err = b.Stat(ctx, key)
			require.Error(t, err)
		} else {
			info, err := b.Stat(ctx, key)
			require.NoError(t, err, "Stat %q", key)
			require.Equal(t, key, info.Key)
			found := false
			for li, err := range b.List(ctx, key) {
				require.NoError(t, err)
				found = found || li.Key == key
			}
			require.True(t, found, "List(%q) yields the key", key)
			require.NoError(t, b.Delete(ctx, key))
			_, err = b.Stat(ctx, key)
			require.ErrorIs(t, err, cas.ErrNotFound)
		}
		out, err := os.ReadDir(parent)
		require.NoError(t, err)
		require.Len(t, out, 1, "a file appeared outside the root after %q", key)
		tmp, err := os.ReadDir(filepath.Join(parent, "root", ".tmp"))
		require.NoError(t, err)
		require.Empty(t, tmp)
	})
}
