package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// HashCheckEvery is how often a credential file's content is read and hashed even when its stat looks unchanged:
// a copy that keeps size and modification time (cp -p, rsync -t) changes neither, and on file systems where the
// change time is not available it would otherwise never be seen. Each call costs one stat; a hash check reads a
// few kilobytes once per period.
const HashCheckEvery = 5 * time.Second

// StatEvery is how often, at most, a call stats a credential file (on the injected clock): a change is seen within
// this time. A stat per call was ~2.5 µs per file on every authenticated call (two files: ~3% of a dressed call's
// CPU); once per 100 ms is nothing, and 100 ms is well inside any revocation an operator can observe.
const StatEvery = 100 * time.Millisecond

// errFileBroken is the error every call gets while a credential file cannot be used; the log says why.
var errFileBroken = errors.New("credential file unusable")

// fileValue is a value parsed from a credential file. It fails closed: the value in force is always what the
// file holds now, or nothing. Uses stat the file, at most once per StatEvery on the injected clock (no watcher
// goroutine to leak or to miss an atomic rename); a changed stat, or HashCheckEvery on the injected clock, reads it
// again, and a new content hash parses it again. A file that is missing, unreadable, writable by group or others, or that does not parse is an error
// until it is fixed: keeping the previous version would keep revoked keys and removed denies working.
//
// A file is read whole in one go; what parses is the file's content. A writer that truncates and rewrites in
// place can be caught half-way: an empty or cut-off document mostly does not parse (every call refused for that
// moment), and one that does parse holds only part of the new file. Write credential files atomically (a
// temporary file renamed over the old one, as Kubernetes does for ConfigMaps and Secrets).
type fileValue[T any] struct {
	path  string
	label string // "keys", "policy", "client_ca": metric label and log field
	what  string // "API keys file", for messages
	parse func([]byte) (T, error)
	log   *slog.Logger
	clock clock.Clock
	// changed is called after the file turns usable or unusable (readiness follows it); may be nil.
	changed func()

	mu     sync.Mutex // serialises reloads
	state  atomic.Pointer[fileState[T]]
	statAt atomic.Int64 // on the injected clock, Unix nanoseconds: when a stat last found the file as in state

	reloadsOK, reloadsFailed atomic.Uint64 // content parsed (or refused) again after a change
}

type fileState[T any] struct {
	stamp   fileStamp
	hash    [sha256.Size]byte
	checked time.Time // on the injected clock: when the content was last read
	val     T
	err     error // non-nil: the file cannot be used; val is the zero value
}

// fileStamp is what a stat tells about a file; any difference means it may have changed.
type fileStamp struct {
	statErr bool
	mod     time.Time
	size    int64
	mode    fs.FileMode
	sys     sysStamp // change time and inode where the platform has them (cp -p keeps mtime, not ctime)
}

func stampOf(path string) (fileStamp, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{statErr: true}, nil, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), mode: fi.Mode(), sys: sysStampOf(fi)}, fi, nil
}

// loadFile reads and parses the file once; an error here is fatal to the caller (the server refuses to start).
func loadFile[T any](path, label, what string, log *slog.Logger, clk clock.Clock, parse func([]byte) (T, error)) (*fileValue[T], error) {
	f := &fileValue[T]{path: path, label: label, what: what, parse: parse, log: log, clock: clk}
	st := f.load(&fileState[T]{})
	if st.err != nil {
		return nil, st.err
	}
	f.state.Store(st)
	f.statAt.Store(st.checked.UnixNano())
	return f, nil
}

// Get returns the file's current value, or an error (naming the file and the reason, for logs) while the file
// cannot be used. It stats the file when the last stat is StatEvery old.
func (f *fileValue[T]) Get() (T, error) {
	return f.get(false)
}

// getNow is Get with a stat whenever it is called (readiness and --check-config look at the file now).
func (f *fileValue[T]) getNow() (T, error) {
	return f.get(true)
}

func (f *fileValue[T]) get(statNow bool) (T, error) {
	cur := f.state.Load()
	now := f.clock.Now()
	if now.Sub(cur.checked) < HashCheckEvery {
		// A clock that went back (a test's) counts as time passed: stat.
		if since := now.UnixNano() - f.statAt.Load(); !statNow && since >= 0 && since < int64(StatEvery) {
			return cur.val, cur.err
		}
		if stamp, _, _ := stampOf(f.path); stamp == cur.stamp {
			f.statAt.Store(now.UnixNano())
			return cur.val, cur.err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur = f.state.Load()
	stamp, _, _ := stampOf(f.path)
	if stamp == cur.stamp && f.clock.Now().Sub(cur.checked) < HashCheckEvery {
		f.statAt.Store(now.UnixNano())
		return cur.val, cur.err // another call reloaded it meanwhile
	}
	next := f.load(cur)
	f.state.Store(next)
	f.statAt.Store(next.checked.UnixNano())
	f.report(cur, next)
	return next.val, next.err
}

// current is the value as last loaded, without looking at the file (for the second look within one call).
func (f *fileValue[T]) current() (T, error) {
	cur := f.state.Load()
	return cur.val, cur.err
}

// load reads the file and returns its state; prev's value is reused when the content is the same.
func (f *fileValue[T]) load(prev *fileState[T]) *fileState[T] {
	now := f.clock.Now()
	fail := func(stamp fileStamp, err error) *fileState[T] {
		return &fileState[T]{stamp: stamp, checked: now, err: fmt.Errorf("%s %s: %w", f.what, f.path, err)}
	}
	stamp, fi, err := stampOf(f.path)
	if err != nil {
		return fail(stamp, err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		// Anyone who can write it can give themselves a key or every action.
		return fail(stamp, fmt.Errorf("is writable by group or others (mode %04o): chmod go-w it", perm))
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fail(stamp, err)
	}
	hash := sha256.Sum256(b)
	if prev.err == nil && !prev.checked.IsZero() && hash == prev.hash {
		return &fileState[T]{stamp: stamp, hash: hash, checked: now, val: prev.val} // touched, not changed
	}
	v, err := f.parse(b)
	if err != nil {
		st := fail(stamp, err)
		st.hash = hash
		f.reloadsFailed.Add(1)
		return st
	}
	if !prev.checked.IsZero() {
		f.reloadsOK.Add(1)
	}
	return &fileState[T]{stamp: stamp, hash: hash, checked: now, val: v}
}

// report logs a change of the file's state (once per change, not per call) and tells readiness.
func (f *fileValue[T]) report(prev, next *fileState[T]) {
	switch {
	case next.err != nil && (prev.err == nil || prev.err.Error() != next.err.Error()):
		f.log.Error("refusing every call until the file is fixed", "file", f.label, "err", next.err)
	case next.err == nil && prev.err != nil:
		f.log.Info("file usable again: serving", "file", f.label, "path", f.path)
	case next.err == nil && next.hash != prev.hash:
		f.log.Info("reloaded", "file", f.label, "path", f.path)
	}
	if (prev.err == nil) != (next.err == nil) && f.changed != nil {
		f.changed()
	}
}

// ok reports whether the file, as last loaded, is usable.
func (f *fileValue[T]) ok() bool { return f.state.Load().err == nil }

// refresh looks at the file (Get) and returns only whether it is usable.
func (f *fileValue[T]) refresh() error {
	_, err := f.Get()
	return err
}

// refreshNow is refresh with a stat now, whenever the last one was.
func (f *fileValue[T]) refreshNow() error {
	_, err := f.getNow()
	return err
}
