package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/barepub"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/transport"
)

// BenchmarkDrainBacklog drains a backlog of N queued QoS 1 messages (200-byte payloads) from a real
// bbolt queue through the real transport to a real Mosquitto over WebSocket, next to a bare
// paho.golang publisher (internal/barepub) with the same window on the same path, for Receive Maximum
// 20 (Mosquitto's default) and 100 (AWS IoT's), on loopback and through a proxy that adds 10 ms each way.
//
// Run it once per case: go test -run '^$' -bench DrainBacklog -benchtime 1x ./agent/
//
// It reports msg/s of the agent ("msg/s"), of the bare publisher ("bare_msg/s") and their ratio, and
// for the agent the peak RssAnon and live heap during the drain. Environment:
//
//	DRAIN_N        backlog sizes, comma-separated (default 10000,100000; add 1000000 for the 1M case)
//	DRAIN_MEASURE  through the proxy only the first this many messages of the backlog are timed
//	               (default 10000: a 1M drain at 1,000 msg/s would take 17 minutes); loopback times all
//	DRAIN_BARE     0: skip the bare publisher (to profile the agent alone)
//	DRAIN_NOACK    1: acknowledgements do not reach the queue (no commits): the read path and the transport
//	DRAIN_MEMSOURCE 1: messages made in memory instead of the queue (the transport alone)
//	DRAIN_PROFILE  a directory: CPU profile of each agent drain and a heap profile at its end go there
//	DRAIN_CASES    substring filter on "loopback/rm20" etc. (default all)
func BenchmarkDrainBacklog(b *testing.B) {
	sizes := []int{10000, 100000}
	if s := os.Getenv("DRAIN_N"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("DRAIN_N=%q: want comma-separated positive counts", s)
			}
			sizes = append(sizes, n)
		}
	}
	measureProxy := 10000
	if s := os.Getenv("DRAIN_MEASURE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("DRAIN_MEASURE=%q: want a positive count", s)
		}
		measureProxy = n
	}
	templates := map[int]string{} // N → a closed queue file holding N messages, copied for each run
	tmpl := b.TempDir()
	template := func(b *testing.B, n int) string {
		if p, ok := templates[n]; ok {
			return p
		}
		p := filepath.Join(tmpl, fmt.Sprintf("q%d.db", n))
		fillQueue(b, p, n)
		templates[n] = p
		return p
	}
	for _, rm := range []int{20, 100} {
		br := mosquitto.Start(b, mosquitto.WithConfig(fmt.Sprintf("max_inflight_messages %d", rm)))
		for _, link := range []string{"loopback", "proxy10ms"} {
			name := fmt.Sprintf("%s/rm%d", link, rm)
			if f := os.Getenv("DRAIN_CASES"); f != "" && !strings.Contains(name, f) {
				continue
			}
			url := br.WSURL()
			measure := 0 // all
			if link == "proxy10ms" {
				px, err := netproxy.New(strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/mqtt"))
				if err != nil {
					b.Fatal(err)
				}
				px.SetDelay(10 * time.Millisecond)
				b.Cleanup(func() { _ = px.Close() })
				url = "ws://" + px.Addr() + "/mqtt"
				measure = measureProxy
			}
			for _, n := range sizes {
				b.Run(fmt.Sprintf("%s/n%d", name, n), func(b *testing.B) {
					m := n
					if measure > 0 {
						m = min(n, measure)
					}
					var agent, bare, ratio float64
					for i := 0; i < b.N; i++ {
						if os.Getenv("DRAIN_BARE") != "0" {
							bare += runBare(b, url, rm, m)
						}
						r := runAgentDrain(b, template(b, n), url, rm, n, m)
						agent += r.rate
						b.ReportMetric(float64(r.peakAnon)/(1<<20), "RssAnon_MiB")
						b.ReportMetric(float64(r.peakHeap)/(1<<20), "heap_MiB")
						b.ReportMetric(float64(r.baseAnon)/(1<<20), "RssAnon_before_MiB")
						b.ReportMetric(float64(r.cpuPerMsg.Nanoseconds())/1000, "cpu_us/msg")
						b.ReportMetric(float64(m)/float64(max(r.commits, 1)), "msg/commit")
					}
					agent /= float64(b.N)
					bare /= float64(b.N)
					ratio = agent / bare
					b.ReportMetric(agent, "msg/s")
					b.ReportMetric(bare, "bare_msg/s")
					b.ReportMetric(ratio, "ratio")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}

var benchPayload = func() []byte {
	p := make([]byte, 200)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}()

// fillQueue writes a queue file holding n messages and closes it.
func fillQueue(b *testing.B, path string, n int) {
	b.Helper()
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]queue.Message, 10000)
	for i := range batch {
		batch[i] = queue.Message{Topic: "bench/drain", Payload: benchPayload, QoS: 1}
	}
	for done := 0; done < n; {
		k := min(len(batch), n-done)
		if _, err := q.Append(context.Background(), batch[:k]...); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
}

// runBare publishes m messages with the bare publisher and returns its msg/s.
func runBare(b *testing.B, url string, window, m int) float64 {
	b.Helper()
	payloads := make([][]byte, m)
	for i := range payloads {
		payloads[i] = benchPayload
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	defer func() {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(m)/1000, "bare_cpu_us/msg")
	}()
	res, err := barepub.Run(context.Background(), barepub.Options{URL: url, ClientID: "bare", Window: window,
		Topic: "bench/drain", Payloads: payloads})
	if err != nil {
		b.Fatal(err)
	}
	if int(res.RecvMax) != window {
		b.Fatalf("the broker announced Receive Maximum %d, the case is for %d", res.RecvMax, window)
	}
	return res.PerSec
}

type drainResult struct {
	rate               float64
	peakAnon, peakHeap uint64
	baseAnon           uint64        // RssAnon before the transport started
	commits            uint64        // queue commits during the drain
	cpuPerMsg          time.Duration // this process's CPU time (user + system) per message
}

// countingSource is the agent's queue source; it times the drain from the first Next that returned
// messages to the m-th acknowledgement.
type countingSource struct {
	*source
	m       int64
	acked   atomic.Int64
	started atomic.Int64 // UnixNano of the first Next with messages
	done    chan struct{}
	once    sync.Once
}

func (s *countingSource) Next(ctx context.Context, after uint64, max int) ([]transport.Message, error) {
	msgs, err := s.source.Next(ctx, after, max)
	if len(msgs) > 0 {
		s.started.CompareAndSwap(0, time.Now().UnixNano())
	}
	return msgs, err
}

func (s *countingSource) Ack(seq uint64) {
	if os.Getenv("DRAIN_NOACK") != "1" {
		s.source.Ack(seq)
	}
	if s.acked.Add(1) == s.m {
		s.once.Do(func() { close(s.done) })
	}
}

// memSource replaces the queue by messages made in memory (DRAIN_MEMSOURCE=1): the transport alone.
type memSource struct {
	*countingSource
	n uint64
}

func (s *memSource) Next(ctx context.Context, after uint64, max int) ([]transport.Message, error) {
	if after >= s.n {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.started.CompareAndSwap(0, time.Now().UnixNano())
	out := make([]transport.Message, 0, max)
	for seq := after + 1; seq <= s.n && len(out) < max; seq++ {
		out = append(out, transport.Message{Seq: seq, Topic: "bench/drain", Payload: benchPayload, QoS: 1})
	}
	return out, nil
}

func (s *memSource) Ack(seq uint64) {
	if s.acked.Add(1) == s.m {
		s.once.Do(func() { close(s.done) })
	}
}

// runAgentDrain copies the template (n messages), drains the first m of them through the transport and
// returns the rate and the peak anonymous memory and live heap of this process during the drain.
func runAgentDrain(b *testing.B, template, url string, window, n, m int) drainResult {
	b.Helper()
	path := filepath.Join(b.TempDir(), "queue.db")
	copyFile(b, template, path)
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if d := q.Stats().Depth; d != n {
		b.Fatalf("the copied queue holds %d messages, want %d", d, n)
	}
	old := debug.SetMemoryLimit(48 << 20) // as the systemd unit sets GOMEMLIMIT
	defer debug.SetMemoryLimit(old)
	runtime.GC()
	debug.FreeOSMemory()

	src := &countingSource{source: (*source)(&link{q: q}), m: int64(m), done: make(chan struct{})}
	var ts transport.Source = src
	if os.Getenv("DRAIN_MEMSOURCE") == "1" {
		ts = &memSource{countingSource: src, n: uint64(n)}
	}
	c, err := transport.New(transport.Config{URL: url, ClientID: "agent", MaxInflight: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, ts)
	if err != nil {
		b.Fatal(err)
	}
	baseAnon := rssAnon()
	stopMem := memPeak()
	if dir := os.Getenv("DRAIN_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("drain-cpu-rm%d-n%d.pprof", window, n)))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	select {
	case <-src.done:
	case <-time.After(30 * time.Minute):
		b.Fatalf("drain of %d of %d messages: only %d acknowledged after 30 minutes", m, n, src.acked.Load())
	}
	el := time.Since(time.Unix(0, src.started.Load()))
	peakAnon, peakHeap := stopMem()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	if dir := os.Getenv("DRAIN_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("drain-heap-rm%d-n%d.pprof", window, n)))
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.WriteHeapProfile(f)
		_ = f.Close()
	}
	if st := c.Status(); st.Window != window {
		b.Errorf("window %d, want %d (Receive Maximum %d)", st.Window, window, st.ReceiveMaximum)
	}
	commits := q.Stats().Commits
	cancel()
	if err := <-runDone; err != nil {
		b.Fatal(err)
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	return drainResult{baseAnon: baseAnon, commits: commits, rate: float64(m) / el.Seconds(), peakAnon: peakAnon, peakHeap: peakHeap, cpuPerMsg: cpu / time.Duration(m)}
}

// memPeak samples RssAnon (from /proc/self/status) and the live heap every 10 ms until stop.
func memPeak() (stop func() (anon, heap uint64)) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var anon, heap uint64
	read := func() {
		metrics.Read(sample)
		heap = max(heap, sample[0].Value.Uint64())
		anon = max(anon, rssAnon())
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-finished
		return anon, heap
	}
}

// rssAnon is this process's RssAnon in bytes (0 where /proc is missing), from /proc/self/statm:
// resident minus shared (file and shmem) pages is the anonymous resident memory. The bench samples it
// every 10 ms during the agent's drain, and /proc/self/status, which the kernel formats field by
// field, cost the agent ~8 % of its CPU in the profile; statm is a few numbers.
func rssAnon() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return 0
	}
	resident, err1 := strconv.ParseUint(f[1], 10, 64)
	shared, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || shared > resident {
		return 0
	}
	return (resident - shared) * uint64(os.Getpagesize())
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}

// ackSource passes every acknowledged seq on to acks.
type ackSource struct {
	*source
	acks chan uint64
}

func (s *ackSource) Ack(seq uint64) {
	s.source.Ack(seq)
	s.acks <- seq
}

// BenchmarkAppendToPuback: one message at a time, from queue.Append (fsync'd) to the broker's PUBACK
// reaching Source.Ack, through the real transport to a real Mosquitto (loopback, Receive Maximum 20).
// One op is one message; reports the median and the 99th percentile.
func BenchmarkAppendToPuback(b *testing.B) {
	br := mosquitto.Start(b, mosquitto.WithConfig("max_inflight_messages 20"))
	q, err := queue.Open(filepath.Join(b.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	src := &ackSource{source: (*source)(&link{q: q}), acks: make(chan uint64, 16)}
	c, err := transport.New(transport.Config{URL: br.WSURL(), ClientID: "latency",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, src)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			b.Error(err)
		}
	}()
	for c.Status().State != transport.StateConnected {
		time.Sleep(5 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		seqs, err := q.Append(ctx, queue.Message{Topic: "bench/latency", Payload: benchPayload, QoS: 1})
		if err != nil {
			b.Fatal(err)
		}
		for seq := range src.acks {
			if seq == seqs[0] {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
