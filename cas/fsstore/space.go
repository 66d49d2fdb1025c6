package fsstore

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/casa-go/casa/cas"
)

// noSpace adds cas.ErrNoSpace, and the path, to err when it says that the
// file system is full (ENOSPC) or a disk quota is exhausted (EDQUOT);
// err stays in the chain. Other errors, and nil, are returned unchanged.
func noSpace(path string, err error) error {
	if err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return fmt.Errorf("%w: %s: %w", cas.ErrNoSpace, path, err)
	}
	return err
}
