package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/edge-agent/edge-agent/"

// goListDeps is the set of packages pkg (of this module) depends on, itself included.
func goListDeps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		m[l] = true
	}
	return m
}

// The import graph goes one way (SPEC.md: cmd/agent → {agent, localapi}, agent → {localapi, queue,
// transport, …}, localapi → queue but never transport, transport →
// nothing of ours but topic rules, awsiot → sigv4), the leaf packages topic, redact and awsregion import
// nothing of ours (and only the standard library), test fixtures never reach the binary, and the
// shared test helpers (internal/testutil) reach no package at all.
func TestImportGraph(t *testing.T) {
	deps := func(pkg string) map[string]bool { return goListDeps(t, pkg) }
	forbidden := map[string][]string{
		"cmd/agent": {mod + "internal/", "github.com/mochi-mqtt/", "testing", "go.uber.org/goleak",
			"github.com/aws/aws-sdk-go-v2/config"},
		"queue":     {mod + "transport", mod + "agent", mod + "sigv4", mod + "awsiot", "github.com/eclipse/paho.golang", "net/http"},
		"transport": {mod + "queue", mod + "agent", mod + "awsiot", mod + "config", "go.etcd.io/bbolt"},
		"sigv4":     {mod + "queue", mod + "transport", mod + "agent", "github.com/eclipse/paho.golang", "go.etcd.io/bbolt"},
		"awsiot":    {mod + "queue", mod + "transport", mod + "agent", "github.com/eclipse/paho.golang", "go.etcd.io/bbolt"},
		"config":    {mod + "queue", mod + "transport", mod + "agent", mod + "awsiot", mod + "sigv4", mod + "redact"},
		// The local API speaks HTTP and nothing else: it reaches the broker only through the agent
		// (localapi.Backend), never the transport or a provider.
		"localapi": {mod + "agent", mod + "transport", mod + "awsiot", mod + "sigv4", "github.com/eclipse/paho.golang"},
	}
	// Leaf packages: only the standard library (a path without a dot in its first element).
	for _, leaf := range []string{"topic", "redact", "logging"} {
		for dep := range deps(leaf) {
			if dep != mod+leaf && strings.Contains(strings.Split(dep, "/")[0], ".") {
				t.Errorf("leaf package %s depends on %s", leaf, dep)
			}
		}
	}
	// The shared test helpers are for _test.go files only: no package of the module (a test fixture
	// such as internal/mosquitto included) builds with them, and they import only the standard
	// library, so any package's tests may use them.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list %s...: %v", mod, err)
	}
	pkgs := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(pkgs) < 10 {
		t.Fatalf("go list %s... listed %d packages", mod, len(pkgs))
	}
	for _, l := range pkgs {
		f := strings.Fields(l)
		if f[0] != mod+"internal/testutil" && slices.Contains(f[1:], mod+"internal/testutil") {
			t.Errorf("%s (not a test) depends on internal/testutil", f[0])
		}
	}
	for _, leaf := range []string{"internal/testutil", "internal/mqttwire", "awsregion"} {
		for dep := range deps(leaf) {
			if dep != mod+leaf && strings.Contains(strings.Split(dep, "/")[0], ".") {
				t.Errorf("leaf package %s depends on %s", leaf, dep)
			}
		}
	}
	// The CLI talks to the agent only through the local API's client.
	if !deps("cmd/agent")[mod+"localapi"] {
		t.Errorf("cmd/agent does not import localapi (its client)")
	}
	for pkg, bad := range forbidden {
		for dep := range deps(pkg) {
			for _, b := range bad {
				if dep == b || strings.HasPrefix(dep, b+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// aws-sdk-go-v2 is a test dependency (the oracle for awsiot's own Cognito
// client) and not part of the binary: no service client, no endpoint rules
// (they pull in regexp), no retryer. The one exception today is sigv4, which
// signs with the SDK's v4 signer: every SDK or smithy-go package the agent
// links must be one sigv4 needs. The day sigv4 signs by itself, that set is
// empty and so is this allowance.
func TestNoAWSSDKButTheSigner(t *testing.T) {
	sdk := func(pkg string) map[string]bool {
		m := map[string]bool{}
		for dep := range goListDeps(t, pkg) {
			if strings.HasPrefix(dep, "github.com/aws/aws-sdk-go-v2") || strings.HasPrefix(dep, "github.com/aws/smithy-go") {
				m[dep] = true
			}
		}
		return m
	}
	agent, signer := sdk("cmd/agent"), sdk("sigv4")
	for dep := range agent {
		if !signer[dep] {
			t.Errorf("the agent links %s, which sigv4's signer does not need: Cognito and everything else AWS must use our own clients", dep)
		}
	}
	for _, bad := range []string{"github.com/aws/aws-sdk-go-v2/service/cognitoidentity", "github.com/aws/smithy-go/endpoints",
		"github.com/aws/aws-sdk-go-v2/aws/retry"} {
		if agent[bad] {
			t.Errorf("the agent links %s", bad)
		}
	}
}
