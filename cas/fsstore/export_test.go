package fsstore

import "os"

// WithDatasync replaces the fdatasync of temporary files, so that tests can
// observe it and inject its failures.
func WithDatasync(f func(*os.File) error) Option { return func(b *Backend) { b.datasync = f } }

// WritebackChunk is how many bytes a staged file takes between background
// fdatasyncs.
const WritebackChunk = writebackChunk

// Datasync is the fdatasync fsstore flushes its temporary files with.
func Datasync(f *os.File) error { return datasync(f) }

// WithPublished sets a function that a replacing write of a blob calls
// between publishing its form and removing the other one.
func WithPublished(f func(key string)) Option { return func(b *Backend) { b.published = f } }
