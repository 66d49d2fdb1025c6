//go:build !linux

package fsstore

import "os"

// startWriteback is a no-op where sync_file_range(2) is missing.
func startWriteback(f *os.File, off, n int64) {}

// datasync flushes f to disk.
func datasync(f *os.File) error { return f.Sync() }
