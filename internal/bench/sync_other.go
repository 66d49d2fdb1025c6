//go:build !linux

package main

import "os"

// datasync flushes f to disk, as fsstore does where fdatasync is missing.
func datasync(f *os.File) error { return f.Sync() }
