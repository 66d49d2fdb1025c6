package cas

import "hash"

// SetNewHash replaces the SHA-256 constructor of s and of its checked
// layer, so that a test can count the bytes hashed by a Put.
func SetNewHash(s *Store, f func() hash.Hash) {
	s.newHash = f
	s.c.newHash = f
}
