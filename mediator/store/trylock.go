package store

import "sync"

// localLocks are the locks of an SQLite store: they need not reach beyond
// the process, since one process at a time works the jobs of an SQLite file
// (lockFile).
type localLocks struct {
	mu   sync.Mutex
	held map[string]bool
}

// tryLock implements storetype.Store.TryLock within the process.
func (l *localLocks) tryLock(name string) (func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] {
		return nil, false
	}
	if l.held == nil {
		l.held = map[string]bool{}
	}
	l.held[name] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			delete(l.held, name)
		})
	}, true
}
