package main

import "flag"

const defaultSocket = "/run/edge-agent/agent.sock"

// socketFlag adds --socket to fs; the returned func resolves it:
// --socket, else $EDGE_AGENT_SOCKET, else defaultSocket.
func socketFlag(fs *flag.FlagSet) func(getenv func(string) string) string {
	s := fs.String("socket", "", "local API `socket` (default $EDGE_AGENT_SOCKET, else "+defaultSocket+")")
	return func(getenv func(string) string) string {
		if *s != "" {
			return *s
		}
		if e := getenv("EDGE_AGENT_SOCKET"); e != "" {
			return e
		}
		return defaultSocket
	}
}
