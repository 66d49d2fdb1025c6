package migrate

import "sync"

// Status holds the latest Progress of a run for other goroutines to read,
// such as an HTTP handler that shows how far a background migration is.
// Set Options.Status to a new Status; Run updates it when it has counted
// the pending records, after each record, and when it ends. The zero
// Status is ready to use and safe for concurrent use.
type Status struct {
	mu       sync.Mutex
	p        Progress
	started  bool
	finished bool
	err      error
}

// Progress returns the latest snapshot.
func (s *Status) Progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// Started reports whether a run has counted its records and begun.
func (s *Status) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Finished reports whether the run has ended, and the error of Run or of
// its Report (nil when every pending record was migrated).
func (s *Status) Finished() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished, s.err
}

func (s *Status) update(p Progress) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.p = p
	s.started = true
	s.mu.Unlock()
}

func (s *Status) finish(p Progress, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.p = p
	s.started = true
	s.finished = true
	s.err = err
	s.mu.Unlock()
}
