// Package keylock provides per-key mutexes.
package keylock

import "sync"

// Set is a set of per-key mutexes, created on demand and dropped when no
// one holds or waits for them. The zero value is ready to use.
type Set struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	mu   sync.Mutex
	refs int
}

// Lock locks key, waiting while another caller holds it, and returns the
// function that unlocks it.
func (s *Set) Lock(key string) (unlock func()) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*entry)
	}
	e := s.m[key]
	if e == nil {
		e = new(entry)
		s.m[key] = e
	}
	e.refs++
	s.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		s.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(s.m, key)
		}
		s.mu.Unlock()
	}
}

// Len returns how many keys are locked or waited for.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
