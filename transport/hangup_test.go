package transport

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

// hungUp tells the broker ending the connection from a reset. Linux reports a reset once, to the first
// call: when the sender's write took the ECONNRESET, the reader sees the end of the stream, which must
// not count as the broker hanging up (that once dead-lettered a good message after a network cut).
func TestHungUpClassification(t *testing.T) {
	reset := fmt.Errorf("websocket write: %w", &net.OpError{Op: "write", Net: "tcp",
		Err: os.NewSyscallError("write", syscall.ECONNRESET)})
	pipe := fmt.Errorf("websocket write: %w", &net.OpError{Op: "write", Net: "tcp",
		Err: os.NewSyscallError("write", syscall.EPIPE)})
	eof := fmt.Errorf("websocket read: %w", &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()})
	frame := fmt.Errorf("websocket read: %w", &websocket.CloseError{Code: websocket.ClosePolicyViolation})
	readReset := fmt.Errorf("websocket read: %w", &net.OpError{Op: "read", Net: "tcp",
		Err: os.NewSyscallError("read", syscall.ECONNRESET)})
	cases := []struct {
		name     string
		read, wr error
		want     bool
	}{
		{"no read error", nil, nil, false},
		{"end of stream", eof, nil, true},
		{"plain io.EOF", fmt.Errorf("websocket read: %w", io.EOF), nil, true},
		{"end of stream after the write took the reset", eof, reset, false},
		{"end of stream, then our write to the closed socket", eof, pipe, true},
		{"close frame, even with a reset write", frame, reset, true},
		{"reset read", readReset, nil, false},
		{"our own close", fmt.Errorf("websocket read: %w", net.ErrClosed), nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &wsConn{readErr: tc.read, werr: tc.wr}
			if got := c.hungUp(); got != tc.want {
				t.Fatalf("hungUp() = %v, want %v (read %v, write %v)", got, tc.want, tc.read, tc.wr)
			}
		})
	}
}
