package dialplan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Live is a dialplan file that can be reloaded while calls run. Each call
// keeps the *Plan it got from Current; a reload only affects later calls.
type Live struct {
	path string
	opts LoadOptions
	log  *slog.Logger
	cur  atomic.Pointer[Plan]

	mu      sync.Mutex // serialises loads
	seen    fileStamp  // the file as last loaded or refused
	pending fileStamp  // a change seen by the last poll, not yet loaded
}

// fileStamp is what Watch compares to notice a change.
type fileStamp struct {
	mod  time.Time
	size int64
	hash string
}

// NewLive loads the dialplan at path; it fails when the file is invalid.
// A nil log discards.
func NewLive(path string, opts LoadOptions, log *slog.Logger) (*Live, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Live{path: path, opts: opts, log: log}
	data, st, err := l.read()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.load(data, st, false); err != nil {
		return nil, err
	}
	return l, nil
}

// Current is the plan new calls are routed with.
func (l *Live) Current() *Plan { return l.cur.Load() }

// Reload reads, validates and swaps in the file. When it is invalid the old
// plan stays, each problem is logged, and the *LoadErrors is returned.
func (l *Live) Reload() error {
	data, st, err := l.read()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.log.Error("dialplan reload refused", "file", l.path, "error", err, "kept", short(l.Current().Hash))
		return err
	}
	return l.load(data, st, true)
}

// Watch polls the file every interval (2 s when not positive) and reloads
// it when its content changed, once its size and modification time have
// held still for one interval (an editor may still be writing). Each reload
// it attempts ends in reloaded (when not nil) with Reload's result, so the
// caller counts file-change reloads like SIGHUP ones. It returns when ctx
// ends.
func (l *Live) Watch(ctx context.Context, every time.Duration, reloaded func(error)) {
	if every <= 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if tried, err := l.poll(); tried && reloaded != nil {
				reloaded(err)
			}
		}
	}
}

// poll reloads the file when it changed and held still. tried says whether
// it attempted a reload; err is that reload's result. A file that vanished
// is only logged: it may be mid-rename, and the next poll sees it again.
func (l *Live) poll() (tried bool, err error) {
	fi, err := os.Stat(l.path)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if l.seen.size != -1 {
			l.log.Warn("dialplan file unreadable, keeping the loaded plan", "file", l.path, "error", err)
			l.seen = fileStamp{size: -1}
		}
		return false, nil
	}
	if fi.ModTime().Equal(l.seen.mod) && fi.Size() == l.seen.size {
		return false, nil
	}
	if !fi.ModTime().Equal(l.pending.mod) || fi.Size() != l.pending.size {
		l.pending = fileStamp{mod: fi.ModTime(), size: fi.Size()}
		return false, nil // changed since the last poll: wait until it holds still
	}
	data, st, err := l.read()
	if err != nil {
		return false, nil // gone again between stat and read: the next poll sees it
	}
	if st.hash == l.seen.hash {
		l.seen = st // touched, not changed
		return false, nil
	}
	return true, l.load(data, st, true) // logged
}

// read returns the file's bytes and stamp.
func (l *Live) read() ([]byte, fileStamp, error) {
	fi, err := os.Stat(l.path)
	if err != nil {
		return nil, fileStamp{}, &LoadErrors{{File: l.path, Msg: "cannot read the dialplan: " + err.Error()}}
	}
	data, err := os.ReadFile(l.path)
	if err != nil {
		return nil, fileStamp{}, &LoadErrors{{File: l.path, Msg: "cannot read the dialplan: " + err.Error()}}
	}
	sum := sha256.Sum256(data)
	return data, fileStamp{mod: fi.ModTime(), size: fi.Size(), hash: hex.EncodeToString(sum[:])}, nil
}

// load validates data and swaps it in; l.mu is held.
func (l *Live) load(data []byte, st fileStamp, reload bool) error {
	l.seen = st
	p, err := Load(l.path, data, filepath.Dir(l.path), l.opts)
	if err != nil {
		if reload {
			var errs LoadErrors
			errors.As(err, &errs)
			for _, e := range errs {
				l.log.Error("dialplan reload refused", "file", l.path, "error", e.Error(), "kept", short(l.Current().Hash))
			}
		}
		return err
	}
	l.cur.Store(p)
	l.log.Info("dialplan loaded", "file", l.path, "hash", short(p.Hash), "rules", len(p.Rules), "menus", len(p.Menus))
	return nil
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
