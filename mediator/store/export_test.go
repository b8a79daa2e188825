package store

import "sync/atomic"

// CountSQLiteCommits makes the SQLite connections opened from now on count
// their commits, and returns the count so far.
func CountSQLiteCommits() func() int64 {
	n := new(atomic.Int64)
	if !commitCounter.CompareAndSwap(nil, n) {
		n = commitCounter.Load()
	}
	return n.Load
}
