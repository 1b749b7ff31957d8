// Package batch is what the rotations of filestore and etcdstore share:
// running over many records with a few workers, and naming the ones that
// failed.
package batch

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// ForEach runs f on every item with n workers (at least one), stopping
// early if ctx is done.
func ForEach[T any](ctx context.Context, items []T, n int, f func(*T)) error {
	n = max(n, 1)
	next := make(chan *T)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range next {
				f(it)
			}
		})
	}
	var err error
	for i := range items {
		if err = ctx.Err(); err != nil {
			break
		}
		next <- &items[i]
	}
	close(next)
	wg.Wait()
	return err
}

// Failed returns the items whose errOf is not nil.
func Failed[T any](items []T, errOf func(T) error) []T {
	var bad []T
	for _, it := range items {
		if errOf(it) != nil {
			bad = append(bad, it)
		}
	}
	return bad
}

// Names lists the names of items for an error message: the first ten, then
// how many more.
func Names[T any](items []T, name func(T) string) string {
	const most = 10
	var s []string
	for i, it := range items {
		if i == most {
			s = append(s, fmt.Sprintf("and %d more", len(items)-most))
			break
		}
		s = append(s, name(it))
	}
	return strings.Join(s, ", ")
}
