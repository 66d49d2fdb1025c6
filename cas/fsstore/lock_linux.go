package fsstore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// closeFirst: whether a temporary file must be closed before it is linked,
// renamed or removed. On Linux it stays open, and locked, until then, so
// that no sweep can take it from its writer.
const closeFirst = false

// flock applies a flock(2) operation, retrying on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// lockTemp takes an exclusive flock(2) on a new temporary file, held while
// its writer lives: the kernel drops it when the file is closed or the
// process dies, which is how a later sweep tells a crashed write's file
// from a live one (also in another process sharing the directory).
//
// It reports false when the file was lost to a sweep between its creation
// and the lock (a sweep that found it unlocked, locked and removed it): the
// caller must create another. Where the file system has no flock, the file
// is kept unlocked and only the age rule of the sweep applies to it.
func lockTemp(f *os.File) (bool, error) {
	switch err := flock(f, unix.LOCK_EX|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil // a sweep holds it, and removes it
	case err != nil:
		return true, nil // no locks on this file system
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, err
	}
	return st.Nlink > 0, nil
}

// removeIfDead removes the temporary file at path if no live process holds
// its lock: its writer crashed. It reports whether it could tell (the file
// system supports flock); when it could not, the caller applies the age
// rule.
func removeIfDead(path string) (known bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if notFound(err) {
			return true, nil // finished meanwhile
		}
		return false, nil
	}
	defer f.Close()
	switch err := flock(f, unix.LOCK_EX|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, nil // a live writer: keep
	case err != nil:
		return false, nil
	}
	// Remove while holding the lock: a writer that locks the file after
	// this sees it unlinked (lockTemp) and starts another.
	if err := os.Remove(path); err != nil && !notFound(err) {
		return true, err
	}
	return true, nil
}
