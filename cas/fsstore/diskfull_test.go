//go:build linux

package fsstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
)

// TestDiskFull writes to a real full file system, a 1 MiB tmpfs (mounting
// it needs root; the test skips otherwise (fails under CI=true), and TestNoSpaceMapping still
// covers the mapping). Every write path fails with an error wrapping
// cas.ErrNoSpace and ENOSPC that names the file, leaves no temporary file,
// and the store works again once space is free.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		testutil.SkipMissing(t, "cannot mount a 1 MiB tmpfs at %s (%v): only TestNoSpaceMapping covers disk-full errors here (run as root)", dir, err)
	}
	t.Cleanup(func() { require.NoError(t, unix.Unmount(dir, unix.MNT_DETACH)) })
	b, err := fsstore.New(dir)
	require.NoError(t, err)
	ctx := t.Context()
	big := bytes.Repeat([]byte("full "), 2<<20/5) // 2 MiB

	requireNoSpace := func(err error, what string) {
		t.Helper()
		require.ErrorIs(t, err, cas.ErrNoSpace, what)
		require.ErrorIs(t, err, syscall.ENOSPC, what)
		require.Contains(t, err.Error(), filepath.Join(dir, ".tmp", "put-"), what)
		es, rerr := os.ReadDir(filepath.Join(dir, ".tmp"))
		require.NoError(t, rerr)
		require.Empty(t, es, "%s left a temporary file", what)
	}
	// Backend.Put, create-only and replacing.
	requireNoSpace(b.Put(ctx, "legacy/big", bytes.NewReader(big), int64(len(big)), cas.PutOptions{IfAbsent: true}), "Put")
	requireNoSpace(b.Put(ctx, "legacy/big", bytes.NewReader(big), -1, cas.PutOptions{}), "Put of unknown size")
	// Store.Put through the Stager.
	_, err = cas.New(b).Put(ctx, bytes.NewReader(big))
	requireNoSpace(err, "Store.Put")
	requireMissingKeys(t, b)

	// Room again: a blob that fits is stored.
	small := []byte("fits")
	res, err := cas.New(b).Put(ctx, bytes.NewReader(small))
	require.NoError(t, err)
	obj, err := b.Open(ctx, res.Hash.Key())
	require.NoError(t, err)
	require.NoError(t, obj.Close())
}

func requireMissingKeys(t *testing.T, b *fsstore.Backend) {
	t.Helper()
	for info, err := range b.List(t.Context(), "") {
		require.NoError(t, err)
		require.Fail(t, "a failed write left an object", info.Key)
	}
}
