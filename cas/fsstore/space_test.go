package fsstore

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

// TestNoSpaceMapping: the errors of a full file system or an exhausted
// quota, however the os package wraps them, wrap cas.ErrNoSpace and keep
// the original error and the path; other errors pass unchanged.
func TestNoSpaceMapping(t *testing.T) {
	t.Parallel()
	const path = "/data/.tmp/put-1"
	for _, tc := range []struct {
		name  string
		err   error
		errno syscall.Errno
	}{
		{"bare ENOSPC", syscall.ENOSPC, syscall.ENOSPC},
		{"bare EDQUOT", syscall.EDQUOT, syscall.EDQUOT},
		{"write", &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"fdatasync quota", &fs.PathError{Op: "fdatasync", Path: path, Err: syscall.EDQUOT}, syscall.EDQUOT},
		{"link", &os.LinkError{Op: "link", Old: path, New: "/data/cas/ab/ab", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"mkdir", &fs.PathError{Op: "mkdir", Path: "/data/cas/ab", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"syscall error", os.NewSyscallError("fsync", syscall.EDQUOT), syscall.EDQUOT},
	} {
		err := noSpace(path, tc.err)
		require.ErrorIs(t, err, cas.ErrNoSpace, tc.name)
		require.ErrorIs(t, err, tc.errno, tc.name)
		require.ErrorIs(t, err, tc.err, tc.name)
		require.Contains(t, err.Error(), path, tc.name)
	}
	for _, err := range []error{
		syscall.EIO,
		&fs.PathError{Op: "write", Path: path, Err: syscall.EROFS},
		errors.New("no space left on device"), // text is no errno
	} {
		require.Equal(t, err, noSpace(path, err))
		require.NotErrorIs(t, noSpace(path, err), cas.ErrNoSpace)
	}
	require.NoError(t, noSpace(path, nil))
}
