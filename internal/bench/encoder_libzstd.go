//go:build cgo && casa_libzstd

package main

import (
	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/libzstd"
)

// benchEncoder is the compression encoder of section 9's Stores: in this
// build (tag casa_libzstd) cas/libzstd's, the system's libzstd.
func benchEncoder() (cas.FrameEncoder, string, error) {
	enc, err := libzstd.New(1)
	return enc, "cas/libzstd, libzstd " + libzstd.Version + " through cgo", err
}
