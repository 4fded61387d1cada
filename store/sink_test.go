package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestJSONLSinkConcurrent(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncEachWrite, FsyncOnClose} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cdr.jsonl")
			s, err := OpenJSONL(path, policy)
			if err != nil {
				t.Fatal(err)
			}
			const writers, each = 8, 50
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						// Indented input: the sink must still write one line.
						rec := fmt.Sprintf("{\n  \"writer\": %d,\n  \"i\": %d,\n  \"pad\": %q\n}", w, i, strings.Repeat("x", 512))
						if err := s.Write(context.Background(), []byte(rec)); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), []byte(`{}`)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Write after Close = %v", err)
			}
			seen := readJSONL(t, path)
			if len(seen) != writers*each {
				t.Fatalf("%d distinct records, want %d", len(seen), writers*each)
			}
		})
	}
}

// readJSONL checks that every line is one JSON record and returns them by
// writer and sequence.
func readJSONL(t *testing.T, path string) map[[2]int]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[[2]int]bool)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var rec struct{ Writer, I int }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("invalid line %q: %v", sc.Text(), err)
		}
		seen[[2]int{rec.Writer, rec.I}] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestJSONLSinkReopenAndInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cdr.jsonl")
	s, err := OpenJSONL(path, FsyncEachWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Write(ctx, []byte(`{"writer":1,"i":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []byte(`not json`)); err == nil {
		t.Fatal("invalid JSON written")
	}
	// Rotation by rename: the old file keeps what was written, the new one
	// gets what follows.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []byte(`{"writer":2,"i":2}`)); err != nil {
		t.Fatal(err)
	}
	if old, cur := readJSONL(t, path+".1"), readJSONL(t, path); len(old) != 1 || !old[[2]int{1, 1}] || len(cur) != 1 || !cur[[2]int{2, 2}] {
		t.Fatalf("after rotation: old %v, new %v", old, cur)
	}
}

type failingSink struct{ closed bool }

func (f *failingSink) Write(context.Context, []byte) error { return errors.New("down") }
func (f *failingSink) Close() error                        { f.closed = true; return nil }

func TestMultiSink(t *testing.T) {
	mem := NewMemory("gw1")
	bad := &failingSink{}
	ms := MultiSink{bad, mem}
	err := ms.Write(context.Background(), []byte(`{"call_id":"a"}`))
	if err == nil {
		t.Fatal("MultiSink hid a failure")
	}
	if got := mem.CDRs(); len(got) != 1 || string(got[0]) != `{"call_id":"a"}` {
		t.Fatalf("a failing sink cost the next one its copy: %q", got)
	}
	if err := ms.Close(); err != nil || !bad.closed {
		t.Fatalf("Close = %v, closed %v", err, bad.closed)
	}
}
