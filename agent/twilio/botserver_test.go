package twilio

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// botServer is a scripted bot: each accepted connection is handed to the
// test, which drives it; the handler returns once the test releases it.
type botServer struct {
	*httptest.Server
	conns chan *botConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []*botConn
}

type botConn struct {
	t       *testing.T
	conn    *websocket.Conn
	header  http.Header
	release chan struct{}
	once    sync.Once
}

func newBotServer(t *testing.T) *botServer {
	b := &botServer{conns: make(chan *botConn, 4)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.wg.Add(1)
		defer b.wg.Done()
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		conn.SetReadLimit(maxMessageBytes)
		bc := &botConn{t: t, conn: conn, header: r.Header.Clone(), release: make(chan struct{})}
		b.mu.Lock()
		b.all = append(b.all, bc)
		b.mu.Unlock()
		b.conns <- bc
		<-bc.release
		_ = conn.CloseNow()
	}))
	t.Cleanup(func() {
		b.mu.Lock()
		for _, bc := range b.all {
			bc.done()
		}
		b.mu.Unlock()
		b.wg.Wait()
		b.Close()
	})
	return b
}

func (b *botServer) wsURL() string { return "ws" + strings.TrimPrefix(b.URL, "http") }

func (b *botServer) accept(t *testing.T) *botConn {
	t.Helper()
	select {
	case bc := <-b.conns:
		return bc
	case <-time.After(5 * time.Second):
		t.Fatal("bot: no connection")
		return nil
	}
}

func (bc *botConn) done() { bc.once.Do(func() { close(bc.release) }) }

// readRaw reads one message.
func (bc *botConn) readRaw() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := bc.conn.Read(ctx)
	return data, err
}

// next reads the next message whose event is want, skipping media unless
// media is wanted; any other event fails the test.
func (bc *botConn) next(want string) (outMessage, []byte) {
	bc.t.Helper()
	for {
		data, err := bc.readRaw()
		if err != nil {
			bc.t.Fatalf("bot: reading for %q: %v", want, err)
		}
		var m outMessage
		if err := json.Unmarshal(data, &m); err != nil {
			bc.t.Fatalf("bot: %v in %s", err, data)
		}
		if m.Event == want {
			return m, data
		}
		if m.Event != "media" {
			bc.t.Fatalf("bot: got %s, want %q", data, want)
		}
	}
}

func (bc *botConn) send(v any) {
	bc.t.Helper()
	var data []byte
	switch v := v.(type) {
	case string:
		data = []byte(v)
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			bc.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bc.conn.Write(ctx, websocket.MessageText, data); err != nil {
		bc.t.Fatalf("bot: send: %v", err)
	}
}
