package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/localapi"
)

// procField reads one "Name: value" field of /proc/<pid>/<file> (io or status) as a number; for
// status the value is in kB.
func procField(pid int, file, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/%s has no %s line", pid, file, name)
}

// rssAnon is the process's anonymous resident memory in KiB.
func rssAnon(pid int) (int64, error) { return procField(pid, "status", "RssAnon") }

// writeBytes is the bytes the process caused to be written to storage (/proc/<pid>/io
// write_bytes: counted when a page is dirtied, so a page rewritten before writeback counts once).
func writeBytes(pid int) (int64, error) { return procField(pid, "io", "write_bytes") }

// runSettle waits until write_bytes of -pid has not changed for -quiet (a commit the agent
// makes after a delay, such as coalesced removals, is then included) and prints it.
func runSettle(args []string) error {
	fs := flag.NewFlagSet("settle", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "process")
	quiet := fs.Duration("quiet", 2*time.Second, "no change for this long = settled")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 {
		return errors.New("-pid is required")
	}
	deadline := time.Now().Add(*timeout)
	last, err := writeBytes(*pid)
	if err != nil {
		return err
	}
	since := time.Now()
	for time.Since(since) < *quiet {
		if time.Now().After(deadline) {
			return fmt.Errorf("write_bytes of pid %d still changing after %s (last %d)", *pid, *timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
		v, err := writeBytes(*pid)
		if err != nil {
			return err
		}
		if v != last {
			last, since = v, time.Now()
		}
	}
	fmt.Println(last)
	return nil
}

// runPosts sends N messages one per request, sequentially, as a sensor with curl would:
// POST /v1/publish?topic=T&qos=1 with the raw payload; every answer must be 202.
func runPosts(args []string) error {
	fs := flag.NewFlagSet("posts", flag.ContinueOnError)
	socket := fs.String("socket", "", "agent socket")
	n := fs.Int("n", 1000, "messages, one per request, one after the other")
	topic := fs.String("topic", "bench/posts", "topic")
	size := fs.Int("size", 200, "payload bytes")
	tag := fs.String("tag", "p", "payload prefix (makes runs distinct)")
	total := fs.Duration("timeout", 120*time.Second, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *total)
	defer cancel()
	cl := localapi.NewClient(*socket)
	defer cl.Close()
	u := "/v1/publish?" + url.Values{"topic": {*topic}, "qos": {"1"}}.Encode()
	for i := 1; i <= *n; i++ {
		body, err := payload(*tag, i, *size)
		if err != nil {
			return err
		}
		resp, err := cl.Do(ctx, http.MethodPost, u, "", bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return fmt.Errorf("message %d of %d: %w", i, *n, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("message %d of %d: %s %s (want 202: stored)", i, *n, resp.Status, bytes.TrimSpace(msg))
		}
	}
	return nil
}

// runProxy forwards 127.0.0.1:<printed port> to -target through internal/netproxy, adding -delay
// in each direction, until SIGTERM or SIGINT. It prints the port on its first line.
func runProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	target := fs.String("target", "", "host:port to forward to")
	delay := fs.Duration("delay", 0, "added to each direction (one-way latency)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" {
		return errors.New("-target is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p, err := netproxy.New(*target)
	if err != nil {
		return err
	}
	p.SetDelay(*delay)
	_, port, _ := strings.Cut(p.Addr(), ":")
	fmt.Println(port)
	<-ctx.Done()
	return p.Close()
}
