//go:build race

package cas_test

// raceEnabled: the race detector is on. Its sync.Pool drops a quarter of
// what it is given, so pooling tests allow more allocation.
const raceEnabled = true
