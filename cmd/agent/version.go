package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/edge-agent/edge-agent/queue"
)

// Stamped at build time by scripts/version.sh --ldflags (the Makefile, build.sh and deb.sh use it):
// -X main.version=1.2.3 -X main.commit=<hash> -X main.date=<RFC 3339>. A plain go build leaves them.
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// buildInfo is what edge-agent version prints: one "key: value" per line, or this JSON with --json.
type buildInfo struct {
	Version     string `json:"version"`
	Commit      string `json:"commit"`
	BuildDate   string `json:"build_date"`
	GoVersion   string `json:"go_version"`
	Platform    string `json:"platform"`     // GOOS/GOARCH, with GOARM on 32-bit ARM
	QueueFormat int    `json:"queue_format"` // the on-disk queue format this build reads and writes
}

func currentBuild() buildInfo {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if arm := goarm(); arm != "" {
		platform += "/" + arm
	}
	return buildInfo{Version: version, Commit: commit, BuildDate: date, GoVersion: runtime.Version(),
		Platform: platform, QueueFormat: queue.FormatVersion}
}

func setupVersion(fs *flag.FlagSet) func(context.Context, *cli) int {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(_ context.Context, c *cli) int {
		b := currentBuild()
		if *asJSON {
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(b); err != nil {
				return c.errorf("%v", err)
			}
			return 0
		}
		fmt.Fprintf(c.stdout, "version: %s\ncommit: %s\nbuild date: %s\ngo: %s\nplatform: %s\nqueue format: %d\n",
			b.Version, b.Commit, b.BuildDate, b.GoVersion, b.Platform, b.QueueFormat)
		return 0
	}
}

// goarm is the GOARM the binary was built with ("6" for the armhf package), "" off 32-bit ARM.
func goarm() string {
	if runtime.GOARCH != "arm" {
		return ""
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return "v" + s.Value
			}
		}
	}
	return ""
}
