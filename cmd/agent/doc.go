// Command edge-agent is the daemon (edge-agent run) and the command-line
// client of its local API (pub, sub, status, identity, version).
//
// main only calls run(args, stdin, stdout, stderr), which parses the
// subcommand with its own flag.FlagSet (no global flag state) and returns
// the exit code: 0 success, 1 failure, 2 usage error. Tests drive run
// directly.
//
// Concurrency: each subcommand runs on the calling goroutine; the
// goroutines it starts (the systemd watchdog and stop notifier of run, the
// stdin line reader of pub -l) are owned and waited for by that subcommand
// before it returns.
package main
