package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// RedisServer is a redis-server of the test's own on a free loopback port,
// without persistence (--save "" --appendonly no), for outage tests that
// need a real server to go away: Kill stops it with SIGKILL by its PID and
// Restart starts a new, empty one on the same port. The shared Redis on
// 6379 is never touched.
type RedisServer struct {
	Addr string // 127.0.0.1:port

	bin  string
	port int
	dir  string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has been reaped
	out  lockedBuffer  // what every run printed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartRedis starts a redis-server for the test, or skips the test with a
// message when none is installed. t.Cleanup kills it.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH: this outage test starts and kills a Redis of its own (Debian package redis-server)")
	}
	s := &RedisServer{bin: bin, port: FreePortPair(t), dir: t.TempDir()}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("--- redis-server %s output ---\n%s", s.Addr, s.out.String())
		}
	})
	s.Restart(t)
	return s
}

// PID is the running server's process id, 0 when it is not running.
func (s *RedisServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Process.Pid
}

// Restart starts the server (empty: nothing persists) if it is not running,
// and waits until it answers PING.
func (s *RedisServer) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	if s.proc != nil {
		s.mu.Unlock()
		t.Fatalf("harness: redis-server %s is already running", s.Addr)
	}
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--protected-mode", "no",
		"--loglevel", "warning", "--daemonize", "no")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	cmd.WaitDelay = 2 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		t.Fatalf("harness: start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.proc, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(s.Addr)
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("harness: redis-server on %s exited at start:\n%s", s.Addr, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: redis-server on %s not answering PING: %v\n%s", s.Addr, err, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL to its PID: no shutdown, no
// save) and waits for the process to be gone.
func (s *RedisServer) Kill(t testing.TB) {
	t.Helper()
	if !s.stop() {
		t.Fatalf("harness: redis-server %s was not running", s.Addr)
	}
}

func (s *RedisServer) stop() bool {
	s.mu.Lock()
	cmd, done := s.proc, s.done
	s.proc = nil
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = cmd.Process.Kill() // our own child, by PID; never a reaped one
	<-done
	return true
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
