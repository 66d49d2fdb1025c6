package cas

import (
	"context"
	"iter"
	"time"
)

// KeyInfo is what a listing of keys tells about an object: less than Info,
// because a blob's encoding and decoded size can cost a Backend a request
// per blob to learn (s3store: a HeadObject, since ListObjectsV2 returns no
// object metadata).
type KeyInfo struct {
	Key     string    // the Backend key
	ModTime time.Time // when the object was written, as the Backend records it
	// StoredSize is the number of bytes the Backend holds: Info.StoredSize,
	// which for a blob stored encoded is not the size a reader gets.
	StoredSize int64
}

// KeyLister is an optional interface of a Backend whose List does more
// than list: s3store's List issues a HeadObject per blob key to report the
// encoding and decoded size. ListKeys yields what one listing tells, in
// List's order, with the same prefix filtering, stopping when the caller
// breaks. It may yield a blob that List would skip because it was deleted
// between the listing and the HeadObject.
//
// Callers use the function ListKeys, which falls back to List for a
// Backend without it.
type KeyLister interface {
	ListKeys(ctx context.Context, prefix string) iter.Seq2[KeyInfo, error]
}

// ListKeys yields the objects b holds under prefix, in b's List order, as
// KeyInfos: through b's KeyLister when b (or the Backend behind the checked
// layer, Checked) has one, and otherwise from b's List. Callers that need
// keys, ages and stored sizes but not decoded sizes (migrate's Cleanup and
// Collect) use it to list cheaply. The iteration ends with ctx's error once
// ctx is done.
func ListKeys(ctx context.Context, b Backend, prefix string) iter.Seq2[KeyInfo, error] {
	c := checkedOf(b)
	kl, ok := c.b.(KeyLister)
	if !ok {
		return func(yield func(KeyInfo, error) bool) {
			for info, err := range c.List(ctx, prefix) {
				if err != nil {
					yield(KeyInfo{}, err)
					return
				}
				if !yield(KeyInfo{Key: info.Key, ModTime: info.ModTime, StoredSize: info.StoredSize}, nil) {
					return
				}
			}
		}
	}
	return func(yield func(KeyInfo, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(KeyInfo{}, err)
			return
		}
		for ki, err := range kl.ListKeys(ctx, prefix) {
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				yield(KeyInfo{}, err)
				return
			}
			if !yield(ki, nil) {
				return
			}
		}
	}
}
