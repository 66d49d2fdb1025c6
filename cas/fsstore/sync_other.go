//go:build !linux

package fsstore

import "os"

// noFollow is zero where O_NOFOLLOW is not portable.
const noFollow = 0

// startWriteback is a no-op where sync_file_range(2) is missing.
func startWriteback(f *os.File, off, n int64) {}

// datasync flushes f to disk.
func datasync(f *os.File) error { return f.Sync() }
