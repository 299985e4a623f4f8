package wsstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns the client end of a real WebSocket connection whose server end sends msgs, then
// closes.
func pair(t *testing.T, msgs ...func(*websocket.Conn) error) *websocket.Conn {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for _, m := range msgs {
			if m(ws) != nil {
				return
			}
		}
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		_, _, _ = ws.ReadMessage() // wait for the client's close
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func send(typ int, s string) func(*websocket.Conn) error {
	return func(ws *websocket.Conn) error { return ws.WriteMessage(typ, []byte(s)) }
}

func TestReadAcrossMessages(t *testing.T) {
	ws := pair(t, send(websocket.BinaryMessage, "ab"), send(websocket.BinaryMessage, ""), send(websocket.BinaryMessage, "cde"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(&Reader{WS: ws}, got); err != nil || string(got) != "abcde" {
		t.Fatalf("read %q, %v; want \"abcde\"", got, err)
	}
}

func TestTextMessageRefused(t *testing.T) {
	ws := pair(t, send(websocket.TextMessage, "x"))
	if _, err := (&Reader{WS: ws}).Read(make([]byte, 4)); !errors.Is(err, ErrNotBinary) {
		t.Fatalf("err = %v, want ErrNotBinary", err)
	}
}
