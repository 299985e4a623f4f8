package transport

import (
	"bytes"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// BenchmarkDrain drains 20,000 QoS 1 messages (100-byte payloads, window 64) over WebSocket through the
// in-process broker and through a real Mosquitto, and reports msg/s.
func BenchmarkDrain(b *testing.B) {
	const n = 20000
	payload := bytes.Repeat([]byte("x"), 100)
	run := func(b *testing.B, url string) {
		src := newFakeSource()
		c := startClient(b, Config{URL: url, ClientID: "bench", MaxInflight: 64}, src)
		testutil.WaitFor(b, 10*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			src.add(n, func(seq uint64) Message { return Message{Topic: "bench/drain", Payload: payload, QoS: 1} })
			src.waitSettled(b, n*(i+1), 5*time.Minute)
		}
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(n*b.N)/el.Seconds(), "msg/s")
		b.ReportMetric(float64(c.Status().Window), "window")
	}
	b.Run("devbroker", func(b *testing.B) {
		br := startBroker(b, devbroker.Options{})
		run(b, br.URL())
	})
	b.Run("mosquitto", func(b *testing.B) {
		m := startMosquitto(b)
		run(b, m.WSURL())
	})
}
