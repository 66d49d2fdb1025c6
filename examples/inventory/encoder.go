//go:build !cgo || !casa_libzstd

package main

import "github.com/casa-go/casa/cas"

// compressionEncoder is -compress's encoder: in this build the Store's
// own, klauspost/compress (built with -tags casa_libzstd: libzstd's).
func compressionEncoder() (cas.FrameEncoder, error) { return nil, nil }
