package auth

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fileValue is a value parsed from a file and parsed again whenever the file's modification time or size
// changes, checked on each use (one stat; no watcher goroutine to leak or to miss an atomic rename). A file that
// turns unreadable or invalid keeps the last good value and logs why, without the file's contents.
type fileValue[T any] struct {
	path  string
	what  string // "API keys file", for messages
	parse func([]byte) (T, error)
	log   *slog.Logger

	mu    sync.Mutex // serialises reloads
	state atomic.Pointer[fileState[T]]
}

type fileState[T any] struct {
	mod  time.Time
	size int64
	val  T
	bad  bool // the file as stamped failed to load; don't retry until it changes again
}

// loadFile reads and parses the file once; an error here is fatal to the caller (the server refuses to start).
func loadFile[T any](path, what string, log *slog.Logger, parse func([]byte) (T, error)) (*fileValue[T], error) {
	f := &fileValue[T]{path: path, what: what, parse: parse, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	v, err := f.read()
	if err != nil {
		return nil, err
	}
	f.state.Store(&fileState[T]{mod: fi.ModTime(), size: fi.Size(), val: v})
	return f, nil
}

func (f *fileValue[T]) read() (T, error) {
	var zero T
	b, err := os.ReadFile(f.path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", f.what, err)
	}
	v, err := f.parse(b)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", f.what, f.path, err)
	}
	return v, nil
}

// Get returns the current value, reloading the file first when it changed.
func (f *fileValue[T]) Get() T {
	cur := f.state.Load()
	fi, err := os.Stat(f.path)
	if err != nil || (fi.ModTime().Equal(cur.mod) && fi.Size() == cur.size) {
		return cur.val // a file that vanished for a moment (an editor's save) keeps the last value
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur = f.state.Load()
	if fi.ModTime().Equal(cur.mod) && fi.Size() == cur.size {
		return cur.val
	}
	v, err := f.read()
	if err != nil {
		f.log.Error("keeping the previous version: the new one does not load", "file", f.what, "err", err)
		f.state.Store(&fileState[T]{mod: fi.ModTime(), size: fi.Size(), val: cur.val, bad: true})
		return cur.val
	}
	f.log.Info("reloaded", "file", f.what, "path", f.path)
	f.state.Store(&fileState[T]{mod: fi.ModTime(), size: fi.Size(), val: v})
	return v
}
