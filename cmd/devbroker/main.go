// Command devbroker runs an in-process MQTT 5 broker for development: MQTT over WebSocket at
// ws://ADDR/mqtt and, optionally, plain MQTT over TCP. Every client and topic is allowed; nothing is
// persisted. It prints the WebSocket URL once it is listening and exits cleanly on SIGINT or SIGTERM.
//
//	devbroker [-ws 127.0.0.1:8083] [-tcp 127.0.0.1:1883] [-v]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edge-agent/edge-agent/internal/devbroker"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("devbroker", flag.ContinueOnError)
	wsAddr := fs.String("ws", "127.0.0.1:8083", "WebSocket listen address (served at /mqtt)")
	tcpAddr := fs.String("tcp", "", "plain MQTT listen address, e.g. 127.0.0.1:1883 (default: none)")
	verbose := fs.Bool("v", false, "log every PUBLISH (topic, QoS, size)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	b, err := devbroker.Start(devbroker.Options{
		WSAddr:       *wsAddr,
		TCPAddr:      *tcpAddr,
		Logger:       log,
		LogPublishes: *verbose,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "devbroker:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println(b.URL())
	if b.TCPAddr() != "" {
		fmt.Println("mqtt://" + b.TCPAddr())
	}
	<-ctx.Done()
	if err := b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "devbroker: close:", err)
		return 1
	}
	return 0
}
