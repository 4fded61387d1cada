package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
)

// FsyncPolicy says when a JSONLSink forces records to stable storage.
type FsyncPolicy int

const (
	// FsyncEachWrite syncs before Write returns: a CDR acknowledged is a
	// CDR kept, even through a power cut. CDRs come at call rate (one per
	// ended call), far below what a disk syncs per second, so this is the
	// default.
	FsyncEachWrite FsyncPolicy = iota
	// FsyncOnClose leaves records in the page cache until Close. A process
	// crash loses nothing (the kernel has the data); a machine crash loses
	// the records since the last sync the kernel chose to do.
	FsyncOnClose
)

// JSONLSink appends CDRs to a file, one compact JSON document per line. It
// is safe for concurrent use: each record is one write(2) of a whole line
// under a mutex, so lines never interleave within this process. The file is
// opened O_APPEND, so external rotation by copy-and-truncate keeps working;
// rotation by rename needs Reopen after the rename.
type JSONLSink struct {
	path   string
	policy FsyncPolicy

	mu     sync.Mutex
	f      *os.File
	closed bool
}

var _ CDRSink = (*JSONLSink)(nil)

// OpenJSONL opens (creating if needed) the file at path for appending.
func OpenJSONL(path string, policy FsyncPolicy) (*JSONLSink, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &JSONLSink{path: path, policy: policy, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	// 0640: CDRs carry phone numbers; the group is for the log shipper.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("store: cdr file: %w", err)
	}
	return f, nil
}

// Write appends cdr as one line.
func (s *JSONLSink) Write(_ context.Context, cdr []byte) error {
	b, err := checkCDR(cdr)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.f.Write(b); err != nil {
		return fmt.Errorf("store: cdr file %s: %w", s.path, err)
	}
	if s.policy == FsyncEachWrite {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("store: cdr file %s: sync: %w", s.path, err)
		}
	}
	return nil
}

// Reopen closes the file and opens the path again, for rotation by rename
// (e.g. on SIGHUP from logrotate). Writes wait while it runs.
func (s *JSONLSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	f, err := openAppend(s.path)
	if err != nil {
		return err // keep writing to the old file rather than to nothing
	}
	old := s.f
	s.f = f
	return errors.Join(old.Sync(), old.Close())
}

// Close syncs and closes the file. Later Writes return ErrClosed.
func (s *JSONLSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.f.Sync(), s.f.Close())
}

// MultiSink writes every CDR to all its sinks. It tries each one even when
// another fails, so Redis being down never costs the file its copy, and
// returns the failures joined.
type MultiSink []CDRSink

var _ CDRSink = MultiSink(nil)

// Write writes cdr to every sink.
func (m MultiSink) Write(ctx context.Context, cdr []byte) error {
	var errs []error
	for _, s := range m {
		if err := s.Write(ctx, cdr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every sink.
func (m MultiSink) Close() error {
	var errs []error
	for _, s := range m {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
