package fsstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// noFollow makes Open fail on a symbolic link: objects are regular files.
const noFollow = unix.O_NOFOLLOW

// startWriteback asks the kernel to start writing n bytes of f at off to
// disk without waiting, so that a later fsync has less to do.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// datasync flushes f's data, and the metadata needed to read it, to disk.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
