package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data, and the metadata needed to read it, to disk,
// as fsstore does its temporary files before it publishes them.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
