package keylock

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLockExcludesPerKey(t *testing.T) {
	t.Parallel()
	var s Set
	var inside [2]atomic.Int32
	var maxInside [2]atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			k := i % 2
			unlock := s.Lock([]string{"a", "b"}[k])
			n := inside[k].Add(1)
			if n > maxInside[k].Load() {
				maxInside[k].Store(n)
			}
			inside[k].Add(-1)
			unlock()
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, maxInside[0].Load())
	require.EqualValues(t, 1, maxInside[1].Load())
	require.Zero(t, s.Len(), "unused keys are dropped")
}

func TestLockOtherKeysDoNotWait(t *testing.T) {
	t.Parallel()
	var s Set
	unlockA := s.Lock("a")
	done := make(chan struct{})
	go func() {
		s.Lock("b")()
		close(done)
	}()
	<-done // would hang if "b" waited for "a"
	require.Equal(t, 1, s.Len())
	unlockA()
	require.Zero(t, s.Len())
}
