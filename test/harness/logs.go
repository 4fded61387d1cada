package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Entry is one log line. A JSON line is its decoded object; any other line is
// kept as {"raw": line}. Every entry also carries "_stream" ("stdout" or
// "stderr") and "_line" (the original text).
type Entry map[string]any

// Str returns the value at key as a string: strings as they are, other
// values formatted with fmt; "" when absent.
func (e Entry) Str(key string) string {
	v, ok := e[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Int returns the value at key as an integer: JSON numbers and numeric
// strings; 0 when absent or not a number. Use Has to tell 0 from absent.
func (e Entry) Int(key string) int64 {
	switch v := e[key].(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if f, err := v.Float64(); err == nil {
			return int64(math.Round(f))
		}
	case float64:
		return int64(math.Round(v))
	case string:
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return i
		}
	}
	return 0
}

// Has reports whether key is present.
func (e Entry) Has(key string) bool {
	_, ok := e[key]
	return ok
}

// Msg is Str("msg").
func (e Entry) Msg() string { return e.Str("msg") }

// Line is the original text of the line.
func (e Entry) Line() string { return e.Str("_line") }

// LogTail collects a process's output lines as they arrive and lets tests
// wait for a particular one. Safe for concurrent use.
type LogTail struct {
	mu      sync.Mutex
	entries []Entry
	changed chan struct{} // closed and replaced on every new line and on close
	closed  bool          // all writers finished (the process has exited)
	readers sync.WaitGroup
}

// NewLogTail returns an empty LogTail.
func NewLogTail() *LogTail {
	return &LogTail{changed: make(chan struct{})}
}

// Consume reads r line by line in a new goroutine until EOF, tagging each
// entry with stream. WaitClosed marks the tail finished once every reader has
// reached EOF.
func (l *LogTail) Consume(r io.Reader, stream string) {
	l.readers.Add(1)
	go func() {
		defer l.readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			l.Add(stream, sc.Text())
		}
		if err := sc.Err(); err != nil {
			l.Add(stream, "harness: reading "+stream+": "+err.Error())
		}
	}()
}

// Add parses one line and appends it.
func (l *LogTail) Add(stream, line string) {
	e := ParseLine(line)
	e["_stream"] = stream
	l.mu.Lock()
	l.entries = append(l.entries, e)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// ParseLine decodes one JSON log line; anything else becomes {"raw": line}.
// Numbers are kept exact (json.Number). The result always has "_line".
func ParseLine(line string) Entry {
	e := Entry{}
	trimmed := strings.TrimSpace(line)
	if strings.HasPrefix(trimmed, "{") {
		dec := json.NewDecoder(strings.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&e); err != nil || dec.More() {
			e = Entry{"raw": line}
		}
	} else {
		e["raw"] = line
	}
	e["_line"] = line
	return e
}

// WaitClosed marks the tail closed once all readers have hit EOF, waiting at
// most timeout for them. It reports whether they all finished.
func (l *LogTail) WaitClosed(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { l.readers.Wait(); close(done) }()
	finished := false
	select {
	case <-done:
		finished = true
	case <-time.After(timeout):
	}
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.changed)
		l.changed = make(chan struct{})
	}
	l.mu.Unlock()
	return finished
}

// All returns a snapshot of every entry so far.
func (l *LogTail) All() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.entries...)
}

// Filter returns the entries so far for which match is true.
func (l *LogTail) Filter(match func(Entry) bool) []Entry {
	var out []Entry
	for _, e := range l.All() {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Text returns the output so far, one original line per line.
func (l *LogTail) Text() string {
	var b strings.Builder
	for _, e := range l.All() {
		b.WriteString(e.Line())
		b.WriteByte('\n')
	}
	return b.String()
}

// Find returns the first entry so far for which match is true.
func (l *LogTail) Find(match func(Entry) bool) (Entry, bool) {
	for _, e := range l.All() {
		if match(e) {
			return e, true
		}
	}
	return nil, false
}

// WaitFor returns the first entry (from the start of the output) for which
// match is true, waiting up to timeout for it to appear. It fails the test,
// with the captured output, on timeout or when the process has exited without
// producing a match. Call it from the test's goroutine.
func (l *LogTail) WaitFor(t testing.TB, timeout time.Duration, match func(Entry) bool) Entry {
	t.Helper()
	e, err := l.waitFor(timeout, match)
	if err != nil {
		t.Fatalf("%v\n--- captured output ---\n%s--- end of output ---", err, l.Text())
	}
	return e
}

func (l *LogTail) waitFor(timeout time.Duration, match func(Entry) bool) (Entry, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0
	for {
		l.mu.Lock()
		pending := l.entries[next:]
		next = len(l.entries)
		changed, closed := l.changed, l.closed
		l.mu.Unlock()
		for _, e := range pending {
			if match(e) {
				return e, nil
			}
		}
		if closed {
			return nil, fmt.Errorf("harness: process output ended without the awaited log line")
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("harness: awaited log line not seen within %v", timeout)
		}
	}
}

// MsgIs is a WaitFor matcher for entries whose "msg" equals msg.
func MsgIs(msg string) func(Entry) bool {
	return func(e Entry) bool { return e.Msg() == msg }
}
