package media

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// ramp returns n samples counting up from start, so frames can be checked for order.
func ramp(start, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(start + i)
	}
	return s
}

type markLog struct {
	mu    sync.Mutex
	names []string
}

func (m *markLog) add(name string) {
	m.mu.Lock()
	m.names = append(m.names, name)
	m.mu.Unlock()
}

func (m *markLog) get() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.names)
}

func TestPlayoutReframing(t *testing.T) {
	tests := []struct {
		name   string
		chunks []int
	}{
		{"ones", slices.Repeat([]int{1}, 400)},
		{"159", []int{159, 159, 159}},
		{"161", []int{161, 161, 161}},
		{"321", []int{321, 321}},
		{"mixed", []int{1, 159, 161, 321, 7, 160, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlayout(time.Minute, nil)
			total := 0
			for _, n := range tt.chunks {
				if _, err := p.WritePCM(ramp(total, n)); err != nil {
					t.Fatal(err)
				}
				total += n
			}
			if got := p.Buffered(); got != time.Duration(total)*time.Second/8000 {
				t.Errorf("buffered %v", got)
			}
			var frame [FrameSamples]int16
			next := 0
			for p.NextFrame(frame[:], false) {
				if want := ramp(next, FrameSamples); !slices.Equal(frame[:], want) {
					t.Fatalf("frame at %d: %v", next, frame[:4])
				}
				next += FrameSamples
			}
			if next != total/FrameSamples*FrameSamples {
				t.Fatalf("%d samples out in whole frames, want %d", next, total/FrameSamples*FrameSamples)
			}
			rest := total - next
			if rest == 0 {
				if p.NextFrame(frame[:], true) {
					t.Error("frame from an empty queue")
				}
				return
			}
			// The partial frame waits, then goes out padded when allowed.
			if p.NextFrame(frame[:], false) {
				t.Fatal("partial frame without allowPartial")
			}
			if !p.NextFrame(frame[:], true) {
				t.Fatal("no partial frame")
			}
			want := append(ramp(next, rest), make([]int16, FrameSamples-rest)...)
			if !slices.Equal(frame[:], want) {
				t.Fatalf("partial frame %v", frame[:])
			}
			if p.Buffered() != 0 || p.NextFrame(frame[:], true) {
				t.Error("queue not empty")
			}
		})
	}
}

func TestPlayoutFlush(t *testing.T) {
	p := NewPlayout(time.Minute, nil)
	var frame [FrameSamples]int16
	p.WritePCM(ramp(1, 200))
	p.Flush()
	p.WritePCM(ramp(1000, 50)) // after the flush: waits for more
	if !p.NextFrame(frame[:], false) || frame[0] != 1 {
		t.Fatal("first frame")
	}
	if !p.NextFrame(frame[:], false) || frame[0] != 161 || frame[39] != 200 || frame[40] != 0 {
		t.Fatalf("flushed partial frame %v", frame[:45])
	}
	if p.NextFrame(frame[:], false) {
		t.Fatal("unflushed partial frame went out")
	}
	p.WritePCM(ramp(1050, 110))
	if !p.NextFrame(frame[:], false) || frame[0] != 1000 || frame[159] != 1159 {
		t.Fatalf("frame after flush %v", frame[:3])
	}
}

func TestPlayoutMarks(t *testing.T) {
	var log markLog
	p := NewPlayout(time.Minute, log.add)
	var frame [FrameSamples]int16

	p.Mark("empty")
	if got := log.get(); !slices.Equal(got, []string{"empty"}) {
		t.Fatalf("mark on empty queue: %v", got)
	}
	p.WritePCM(make([]int16, 100))
	p.Mark("a") // in the first frame
	p.WritePCM(make([]int16, 100))
	p.Mark("b") // in the second frame
	p.Mark("c")
	p.WritePCM(make([]int16, 120))
	p.Mark("d") // exactly at the end of the second frame
	p.WritePCM(make([]int16, 10))
	p.Mark("e") // after a partial frame

	steps := []struct {
		partial bool
		ok      bool
		want    []string
	}{
		{false, true, []string{"empty", "a"}},
		{false, true, []string{"empty", "a", "b", "c", "d"}},
		{false, false, []string{"empty", "a", "b", "c", "d"}},
		{true, true, []string{"empty", "a", "b", "c", "d", "e"}},
	}
	for i, s := range steps {
		if ok := p.NextFrame(frame[:], s.partial); ok != s.ok {
			t.Fatalf("step %d: NextFrame %v", i, ok)
		}
		if got := log.get(); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: marks %v, want %v", i, got, s.want)
		}
	}
}

func TestPlayoutClear(t *testing.T) {
	var log markLog
	p := NewPlayout(time.Minute, log.add)
	p.WritePCM(make([]int16, 500))
	p.Mark("one")
	p.WritePCM(make([]int16, 75))
	p.Mark("two")
	p.Clear()
	if got := log.get(); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("marks %v", got)
	}
	var frame [FrameSamples]int16
	if p.Buffered() != 0 || p.NextFrame(frame[:], true) {
		t.Fatal("queue not empty after clear")
	}
	// The queue works after a clear, and marks are not fired twice.
	p.WritePCM(ramp(5, 160))
	p.Mark("three")
	if !p.NextFrame(frame[:], false) || frame[0] != 5 {
		t.Fatal("frame after clear")
	}
	if got := log.get(); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Fatalf("marks %v", got)
	}
}

// A mark callback may call back into the Playout without deadlock, and marks it sets keep
// their order.
func TestPlayoutReentrantMark(t *testing.T) {
	var log markLog
	var p *Playout
	p = NewPlayout(time.Minute, func(name string) {
		log.add(name)
		if name == "first" {
			p.Mark("from-callback") // queue is empty: fires right after "first"
			p.Buffered()
		}
	})
	p.WritePCM(make([]int16, 160))
	p.Mark("first")
	p.Mark("second")
	var frame [FrameSamples]int16
	p.NextFrame(frame[:], false)
	if got := log.get(); !slices.Equal(got, []string{"first", "second", "from-callback"}) {
		t.Fatalf("marks %v", got)
	}
}

func TestPlayoutCap(t *testing.T) {
	p := NewPlayout(100*time.Millisecond, nil) // 800 samples
	if d, err := p.WritePCM(make([]int16, 700)); d != 0 || err != nil {
		t.Fatal(d, err)
	}
	d, err := p.WritePCM(make([]int16, 300))
	if d != 200 || !errors.Is(err, ErrPlayoutFull) {
		t.Fatalf("dropped %d, %v", d, err)
	}
	d, err = p.WriteUlaw(make([]byte, 10))
	if d != 10 || !errors.Is(err, ErrPlayoutFull) {
		t.Fatalf("dropped %d, %v", d, err)
	}
	if p.Buffered() != 100*time.Millisecond {
		t.Fatalf("buffered %v", p.Buffered())
	}
	var frame [FrameSamples]int16
	p.NextFrame(frame[:], false)
	if d, err := p.WriteUlaw(make([]byte, 160)); d != 0 || err != nil {
		t.Fatal(d, err)
	}
}

func TestPlayoutUlaw(t *testing.T) {
	tone := Tone(1000, 100*time.Millisecond, 0.5)
	ulaw := make([]byte, len(tone))
	Encode(PCMU, ulaw, tone)
	want := make([]int16, len(tone))
	Decode(PCMU, want, ulaw)

	p := NewPlayout(time.Minute, nil)
	// Mixed µ-law and PCM chunks, with the ring wrapping round.
	for _, c := range [][2]int{{0, 37}, {37, 200}, {200, 201}, {201, 800}} {
		if _, err := p.WriteUlaw(ulaw[c[0]:c[1]]); err != nil {
			t.Fatal(err)
		}
	}
	var got []int16
	var frame [FrameSamples]int16
	for p.NextFrame(frame[:], false) {
		got = append(got, frame[:]...)
	}
	if !slices.Equal(got, want) {
		t.Fatal("µ-law audio does not come out as decoded")
	}
}

// The ring grows and wraps with data intact.
func TestPlayoutWrapAndGrow(t *testing.T) {
	p := NewPlayout(10*time.Second, nil)
	var frame [FrameSamples]int16
	next, out := 0, 0
	for round := range 300 {
		n := 37 + round*13%500
		p.WritePCM(ramp(next, n))
		next += n
		for range round % 3 {
			if p.NextFrame(frame[:], false) {
				if frame[0] != int16(out) || frame[159] != int16(out+159) {
					t.Fatalf("round %d: frame %d..%d, want %d", round, frame[0], frame[159], out)
				}
				out += FrameSamples
			}
		}
	}
}

func TestPlayoutConcurrent(t *testing.T) {
	var log markLog
	p := NewPlayout(time.Minute, log.add)
	const chunks = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the agent
		defer wg.Done()
		v := 0
		for i := range chunks {
			n := 1 + i*37%321
			p.WritePCM(ramp(v, n))
			v += n
			if i%100 == 99 {
				p.Mark(string(rune('A' + i/100)))
			}
			if i == chunks-1 {
				p.Flush()
			}
		}
	}()
	// The pacer.
	var frame [FrameSamples]int16
	want := 0
	deadline := time.Now().Add(10 * time.Second)
	for len(log.get()) < chunks/100 && time.Now().Before(deadline) {
		if !p.NextFrame(frame[:], false) {
			time.Sleep(10 * time.Microsecond)
			continue
		}
		for i := range frame {
			if frame[i] != int16(want) && !(frame[i] == 0 && p.Buffered() == 0) {
				t.Fatalf("sample %d: %d", want, frame[i])
			}
			want++
		}
	}
	wg.Wait()
	got := log.get()
	if len(got) != chunks/100 {
		t.Fatalf("%d marks", len(got))
	}
	for i, name := range got {
		if name != string(rune('A'+i)) {
			t.Fatalf("marks out of order: %v", got)
		}
	}
}

func TestPlayoutConcurrentClear(t *testing.T) {
	var log markLog
	p := NewPlayout(time.Second, log.add)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 5000 {
			p.WritePCM(make([]int16, 97))
			if i%10 == 0 {
				p.Mark("m")
			}
			if i%50 == 0 {
				p.Clear()
			}
		}
		p.Clear()
	}()
	go func() {
		defer wg.Done()
		var frame [FrameSamples]int16
		for range 20000 {
			p.NextFrame(frame[:], true)
		}
	}()
	wg.Wait()
	if n := len(log.get()); n != 500 {
		t.Fatalf("%d marks fired, want 500", n)
	}
}

func TestPlayoutZeroAlloc(t *testing.T) {
	p := NewPlayout(time.Minute, func(string) {})
	chunk := make([]int16, 160)
	ulaw := make([]byte, 160)
	var frame [FrameSamples]int16
	for range 100 { // warm up: the ring is allocated
		p.WritePCM(chunk)
		p.NextFrame(frame[:], false)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		p.WritePCM(chunk)
		p.WriteUlaw(ulaw)
		p.NextFrame(frame[:], false)
		p.NextFrame(frame[:], false)
	})
	if allocs != 0 {
		t.Errorf("%v allocs", allocs)
	}
}

func BenchmarkPlayoutSteadyState(b *testing.B) {
	p := NewPlayout(time.Minute, nil)
	chunk := make([]int16, 333) // odd-sized agent chunks
	var frame [FrameSamples]int16
	b.ReportAllocs()
	for b.Loop() {
		p.WritePCM(chunk)
		for p.NextFrame(frame[:], false) {
		}
	}
}
