package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/edge-agent/edge-agent/localapi"
)

const usageText = `edge-agent: store-and-forward MQTT agent for gateways

Usage:
  edge-agent run [--config PATH]         run the agent (default config /etc/edge-agent/agent.toml)
  edge-agent pub -t TOPIC (-m MSG | -f FILE | -l | -s | -n) [-q 0|1] [-r] [--broker NAME] [--socket PATH]
                                         publish through the local agent
  edge-agent sub -t FILTER [-t FILTER…] [-v] [-C COUNT] [--broker NAME] [--socket PATH]
                                         print messages from the broker
  edge-agent status [--json] [--socket PATH]
                                         connection and queue state, per broker
  edge-agent identity [--broker NAME] [--config PATH]
                                         print the Cognito identity id (aws-iot)
  edge-agent deadletters [--json] [--broker NAME] [--requeue IDS|all] [--delete IDS|all] [--socket PATH]
                                         messages the broker refused: list, requeue, delete
  edge-agent check-config [--config PATH]
                                         validate a config, print the effective settings (secrets redacted)
  edge-agent version [--json]            version, commit, build date, Go version, queue format
  edge-agent help [COMMAND]              this text, or a command's flags

The client commands find the agent at --socket, else $EDGE_AGENT_SOCKET,
else /run/edge-agent/agent.sock.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// command is one subcommand. flags builds its FlagSet; exec runs it after
// parsing and returns the exit code.
type command struct {
	summary string
	setup   func(fs *flag.FlagSet) func(ctx context.Context, c *cli) int
}

// cli carries the standard streams and the environment of one run.
type cli struct {
	name   string // "edge-agent pub": prefix of error messages
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func (c *cli) errorf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, fmt.Sprintf(format, args...))
	return 1
}

func commands() map[string]command {
	return map[string]command{
		"run":          {"run the agent in the foreground", setupRun},
		"pub":          {"publish messages through the local agent", setupPub},
		"sub":          {"print messages from the broker", setupSub},
		"status":       {"show connection and queue state", setupStatus},
		"identity":     {"print the Cognito identity id", setupIdentity},
		"deadletters":  {"list, requeue or delete messages the broker refused", setupDeadLetters},
		"version":      {"print the version, commit, build date, Go version and queue format", setupVersion},
		"check-config": {"validate a configuration file and print the effective settings, secrets redacted", setupCheckConfig},
	}
}

// run is the whole program; it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			return run([]string{args[1], "-h"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usageText)
		return 0
	case "--version", "-version":
		name = "version"
	}
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "edge-agent: unknown command %q (try edge-agent help)\n", name)
		return 2
	}
	c := &cli{name: "edge-agent " + name, stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed below
	exec := cmd.setup(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage of %s: %s\n", c.name, cmd.summary)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		usage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", c.name, fs.Arg(0))
		usage(stderr)
		return 2
	}
	return exec(context.Background(), c)
}

// usageError reports a wrong combination of flags: exit code 2.
func (c *cli) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s (see %s -h)\n", c.name, fmt.Sprintf(format, args...), c.name)
	return 2
}

func setupIdentity(fs *flag.FlagSet) func(context.Context, *cli) int {
	socket := socketFlag(fs)
	cfgPath := fs.String("config", "", "read the agent's `file` and ask Cognito directly instead of the running agent")
	broker := fs.String("broker", "", "the identity of the aws-iot broker named `name` (default: the only aws-iot broker)")
	return func(ctx context.Context, c *cli) int {
		if *cfgPath == "" {
			id, err := identityFromAgent(ctx, socket(c.getenv), *broker)
			if err == nil {
				fmt.Fprintln(c.stdout, id)
				return 0
			}
			var ae *localapi.Error
			if errors.As(err, &ae) {
				return c.errorf("%v", err)
			}
			// The agent is not running: read its configuration and ask Cognito ourselves.
			*cfgPath = defaultConfigPath
			fmt.Fprintf(c.stderr, "%s: %v; reading %s instead\n", c.name, err, *cfgPath)
		}
		id, err := identityFromConfig(ctx, *cfgPath, *broker, c.stderr)
		if err != nil {
			return c.errorf("%v", err)
		}
		fmt.Fprintln(c.stdout, id)
		return 0
	}
}
