//go:build !linux

package fsstore

import "os"

// closeFirst: close a temporary file before linking, renaming or removing
// it (required on Windows).
const closeFirst = true

// lockTemp does nothing where casa takes no locks: only the age rule of the
// sweep guards temporary files.
func lockTemp(*os.File) (bool, error) { return true, nil }

// removeIfDead cannot tell a crashed write's file here: the caller applies
// the age rule.
func removeIfDead(string) (known bool, err error) { return false, nil }
