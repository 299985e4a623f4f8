package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchclient ports|lines|latency|posts|wait|settle|proxy [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "ports":
		err = runPorts(args)
	case "lines":
		err = runLines(args)
	case "latency":
		err = runLatency(args)
	case "posts":
		err = runPosts(args)
	case "wait":
		err = runWait(args)
	case "settle":
		err = runSettle(args)
	case "proxy":
		err = runProxy(args)
	default:
		err = fmt.Errorf("unknown job %q: use ports, lines, latency, posts, wait, settle or proxy", cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchclient %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// runPorts holds all listeners open at once so the ports are distinct.
func runPorts(args []string) error {
	if len(args) != 1 {
		return errors.New("give the number of ports")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 16 {
		return fmt.Errorf("bad count %q: 1..16", args[0])
	}
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("finding a free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, " "))
	return nil
}

func runLines(args []string) error {
	fs := flag.NewFlagSet("lines", flag.ContinueOnError)
	n := fs.Int("n", 1000, "number of lines")
	size := fs.Int("size", 64, "bytes per line, without the newline")
	tag := fs.String("tag", "m", "prefix that makes lines of different runs distinct")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for i := 1; i <= *n; i++ {
		line, err := payload(*tag, i, *size)
		if err != nil {
			return err
		}
		w.Write(line)
		w.WriteByte('\n')
	}
	return w.Flush()
}

// payload is "<tag>-<i, 8 digits>-" padded with '.' to exactly size bytes.
func payload(tag string, i, size int) ([]byte, error) {
	b := fmt.Appendf(nil, "%s-%08d-", tag, i)
	if len(b) > size {
		return nil, fmt.Errorf("-size %d is too small for %q", size, b)
	}
	return append(b, bytes.Repeat([]byte("."), size-len(b))...), nil
}

func runLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	socket := fs.String("socket", "", "agent socket")
	n := fs.Int("n", 1000, "messages, sent one after the other")
	topic := fs.String("topic", "bench/latency", "topic")
	size := fs.Int("size", 64, "payload bytes")
	wait := fs.Duration("wait", 5*time.Second, "the agent's wait=delivered timeout per message")
	total := fs.Duration("timeout", 60*time.Second, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *total)
	defer cancel()
	cl := localapi.NewClient(*socket)
	defer cl.Close()
	u := "/v1/publish?" + url.Values{
		"topic": {*topic}, "qos": {"1"}, "wait": {"delivered"}, "timeout": {wait.String()},
	}.Encode()
	lat := make([]time.Duration, 0, *n)
	for i := 1; i <= *n; i++ {
		body, err := payload("lat", i, *size)
		if err != nil {
			return err
		}
		start := time.Now()
		resp, err := cl.Do(ctx, http.MethodPost, u, "", bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return fmt.Errorf("message %d of %d: %w", i, *n, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("message %d of %d: %s %s (want 200: acknowledged by the broker)", i, *n, resp.Status, bytes.TrimSpace(msg))
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	fmt.Printf("n=%d p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s mean_ms=%s\n", len(lat),
		ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99)),
		ms(lat[len(lat)-1]), ms(sum/time.Duration(len(lat))))
	return nil
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted, a non-empty ascending slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// checker follows the growing output file of mosquitto_sub -F '%t %p' and
// counts the distinct payloads on one topic.
type checker struct {
	f       *os.File
	prefix  []byte
	partial []byte
	seen    map[uint64]struct{} // FNV-1a 64 of each payload: 1M payloads in ~40 MB, not ~250 MB
	dups    int
}

func (c *checker) poll() error {
	buf := make([]byte, 256<<10)
	for {
		n, err := c.f.Read(buf)
		data := append(c.partial, buf[:n]...)
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			line := data[:i]
			data = data[i+1:]
			if p, ok := bytes.CutPrefix(line, c.prefix); ok {
				h := fnv.New64a()
				h.Write(p)
				if _, dup := c.seen[h.Sum64()]; dup {
					c.dups++
				} else {
					c.seen[h.Sum64()] = struct{}{}
				}
			}
		}
		c.partial = append(c.partial[:0], data...)
		if errors.Is(err, io.EOF) || n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func runWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	socket := fs.String("socket", "", "agent socket; empty = do not ask the agent (its depth counts as 0)")
	file := fs.String("checker", "", "output file of mosquitto_sub -F '%t %p'")
	pid := fs.Int("pid", 0, "if set, sample RssAnon of this process at every poll and print its peak")
	topic := fs.String("topic", "", "topic whose messages to count")
	n := fs.Int("n", 0, "distinct payloads expected")
	after := fs.Int64("after", 0, "report the agent's connect time only if it is after this time (Unix ns)")
	every := fs.Duration("every", 10*time.Millisecond, "poll interval")
	offset := fs.Int64("offset", 0, "skip this many bytes of the checker file (the lines of earlier runs)")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" || *n < 1 || *file == "" {
		return errors.New("-checker, -topic and -n are required")
	}
	f, err := os.Open(*file)
	if err != nil {
		return fmt.Errorf("checker output: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(*offset, io.SeekStart); err != nil {
		return fmt.Errorf("checker output: %w", err)
	}
	ck := &checker{f: f, prefix: []byte(*topic + " "), seen: make(map[uint64]struct{}, *n)}
	var cl *localapi.Client
	if *socket != "" {
		cl = localapi.NewClient(*socket)
		defer cl.Close()
	}
	var rssPeak int64 // KiB
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tick := time.NewTicker(*every)
	defer tick.Stop()

	var connected, depth0, all time.Time
	var last localapi.Status
	for {
		now := time.Now()
		if all.IsZero() {
			if err := ck.poll(); err != nil {
				return fmt.Errorf("reading %s: %w", *file, err)
			}
			if len(ck.seen) >= *n {
				all = now
			}
		}
		if *pid > 0 {
			if kib, err := rssAnon(*pid); err == nil {
				rssPeak = max(rssPeak, kib)
			}
		}
		st, err := localapi.Status{BrokerStatus: localapi.BrokerStatus{State: "connected"}}, error(nil)
		if cl != nil {
			st, err = cl.Status(ctx)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			last = st
			if connected.IsZero() && st.State == "connected" && st.Since.UnixNano() > *after {
				connected = st.Since
			}
			switch {
			case st.Queue.Depth > 0:
				depth0 = time.Time{}
			case depth0.IsZero():
				depth0 = now
			}
		}
		if !all.IsZero() && !depth0.IsZero() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: the checker subscriber has %d of %d messages on %s (%d duplicates); agent state %q, queue depth %d",
				*timeout, len(ck.seen), *n, *topic, ck.dups, last.State, last.Queue.Depth)
		case <-tick.C:
		}
	}
	ns := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	fmt.Printf("connected_ns=%d depth0_ns=%d all_ns=%d received=%d dups=%d rss_anon_peak_kib=%d\n",
		ns(connected), ns(depth0), ns(all), len(ck.seen), ck.dups, rssPeak)
	return nil
}
