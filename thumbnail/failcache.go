package thumbnail

import (
	"container/list"
	"errors"
	"sync"
)

// failureCache remembers, by thumbnail key, the errors of generations
// that will fail the same way every time: at most max entries, least
// recently used first out. It is safe for concurrent use.
type failureCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *failure, most recent first
	byKey map[string]*list.Element
}

type failure struct {
	key string
	err error
}

func newFailureCache(max int) *failureCache {
	return &failureCache{max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

// permanent says whether err is a failure that will always repeat for
// the same blob and settings: ErrUnsupported, ErrTooLarge or ErrCorrupt,
// and none of the errors that may pass (ErrTimeout, a cancelled context,
// a backend error, an internal panic).
func permanent(err error) bool {
	if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, errPanic) {
		return false
	}
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt)
}

// get returns the remembered error of key, or nil.
func (c *failureCache) get(key string) error {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byKey[key]
	if e == nil {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*failure).err
}

// add remembers err for key when it is permanent.
func (c *failureCache) add(key string, err error) {
	if c.max <= 0 || !permanent(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byKey[key]; e != nil {
		e.Value.(*failure).err = err
		c.order.MoveToFront(e)
		return
	}
	c.byKey[key] = c.order.PushFront(&failure{key: key, err: err})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*failure).key)
	}
}

// len returns the number of entries.
func (c *failureCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
