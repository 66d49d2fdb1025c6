//go:build !cgo || !casa_libzstd

package main

import "github.com/casa-go/casa/cas"

// benchEncoder is the compression encoder of section 9's Stores: in this
// build the Store's own (nil), klauspost/compress's.
func benchEncoder() (cas.FrameEncoder, string, error) {
	return nil, "klauspost/compress, pure Go", nil
}
