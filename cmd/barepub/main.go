package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/edge-agent/edge-agent/internal/barepub"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "barepub: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("barepub", flag.ContinueOnError)
	url := fs.String("url", "", "broker WebSocket URL, ws://host:port/mqtt")
	n := fs.Int("n", 10000, "messages")
	topic := fs.String("topic", "bench/bare", "topic")
	size := fs.Int("size", 200, "payload bytes")
	tag := fs.String("tag", "bare", "payload prefix (makes runs distinct)")
	window := fs.Int("window", 0, "unacknowledged QoS 1 messages at most; 0 = the broker's Receive Maximum")
	clientID := fs.String("id", fmt.Sprintf("barepub-%d", os.Getpid()), "MQTT client id")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *n < 1 {
		return errors.New("-url and -n >= 1 are required")
	}
	payloads := make([][]byte, *n)
	for i := range payloads {
		b := fmt.Appendf(nil, "%s-%08d-", *tag, i+1)
		if len(b) > *size {
			return fmt.Errorf("-size %d is too small for %q", *size, b)
		}
		payloads[i] = append(b, bytes.Repeat([]byte("."), *size-len(b))...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := barepub.Run(ctx, barepub.Options{URL: *url, ClientID: *clientID, Window: *window, Topic: *topic, Payloads: payloads})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "connack_ns=%d done_ns=%d window=%d receive_maximum=%d\n",
		res.Start.UnixNano(), res.Done.UnixNano(), res.Window, res.RecvMax)
	return nil
}
