package agent

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
)

// heapPeak samples the live heap (objects not yet freed) every millisecond until stop is called and
// returns the highest value seen and the value before the first sample.
func heapPeak() (stop func() (peak, base uint64)) {
	runtime.GC()
	runtime.GC() // twice: sync.Pool's victim cache (bbolt's page pool) goes only on the second
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var mu sync.Mutex
	peak := base
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				v := read()
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-finished
		v := read()
		mu.Lock()
		defer mu.Unlock()
		return max(peak, v), base
	}
}

// maxBatch is an NDJSON body at the documented maximum: 10,000 lines, about 7.8 MB.
func maxBatch() []byte {
	var b strings.Builder
	payload := strings.Repeat("p", 745)
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, `{"topic":"mem/batch/%05d","payload":"%s"}`+"\n", i, payload)
	}
	return []byte(b.String())
}

// TestMaxBatchPeakHeap logs the heap a maximum NDJSON batch takes (no assertion: a figure for the
// record). GOGC=5 during the request makes the sampled heap close to what is really live.
func TestMaxBatchPeakHeap(t *testing.T) {
	b := mosquitto.Start(t)
	ta := startAgent(t, b.WSURL(), "")
	body := maxBatch()
	for _, gogc := range []int{100, 5} {
		old := debug.SetGCPercent(gogc)
		stop := heapPeak()
		r := ta.do("POST", "/v1/publish", "application/x-ndjson", body)
		peak, base := stop()
		debug.SetGCPercent(old)
		if r.status != 202 {
			t.Fatalf("batch: %d %s", r.status, r.raw)
		}
		t.Logf("GOGC=%d: one max NDJSON batch (%d lines, %.1f MB): peak heap %.1f MiB, %.1f MiB above the %.1f MiB before it",
			gogc, 10000, float64(len(body))/1e6, mib(peak), mib(peak-base), mib(base))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
