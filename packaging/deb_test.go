package packaging

import (
	"bufio"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var arches = []string{"armhf", "arm64", "amd64"}

// repo is the repository root.
func repo(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// need fails the test (never skips it) when a tool is missing: these checks are part of the suite.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/test.sh installs it (apt-get install dpkg systemd passwd qemu-user-static)", tool)
		}
	}
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// readVersions runs scripts/version.sh: what a build of this tree is stamped with.
func readVersions() (map[string]string, error) {
	out, err := exec.Command(filepath.Join("..", "scripts/version.sh")).Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/version.sh: %w", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m, nil
}

// versions are what the packages of debs were stamped with.
func versions(t *testing.T) map[string]string {
	t.Helper()
	debs(t)
	return stamp
}

var (
	buildOnce sync.Once
	built     map[string]string // arch → .deb
	buildErr  error
	buildDir  string
	stamp     map[string]string // scripts/version.sh's output when the packages were built
)

// debs builds the three packages once with scripts/deb.sh into a temporary directory.
func debs(t *testing.T) map[string]string {
	t.Helper()
	need(t, "dpkg-deb", "go")
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "edge-agent-deb-")
		if buildErr != nil {
			return
		}
		if stamp, buildErr = readVersions(); buildErr != nil {
			return
		}
		cmd := exec.Command(filepath.Join(repo(t), "scripts/deb.sh"))
		cmd.Env = append(os.Environ(), "OUT="+buildDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("scripts/deb.sh: %v\n%s", err, out)
			return
		}
		if after, err := readVersions(); err != nil || after["VERSION"] != stamp["VERSION"] || after["COMMIT"] != stamp["COMMIT"] {
			buildErr = fmt.Errorf("the tree changed while the packages were built (%v, then %v, %v): run the test again", stamp, after, err)
			return
		}
		built = map[string]string{}
		for _, arch := range arches {
			m, _ := filepath.Glob(filepath.Join(buildDir, "edge-agent_*_"+arch+".deb"))
			if len(m) != 1 {
				buildErr = fmt.Errorf("want one %s package in %s, found %v\n%s", arch, buildDir, m, out)
				return
			}
			built[arch] = m[0]
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// The packages' names, fields, files, modes and owners, conffiles and maintainer scripts.
func TestDebContents(t *testing.T) {
	debs := debs(t)
	v := versions(t)
	if !regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`).MatchString(v["DEB_VERSION"]) {
		t.Fatalf("Debian version %q does not start with a digit or has characters deb-version(7) refuses", v["DEB_VERSION"])
	}
	wantFiles := map[string]string{ // path → mode and owner in dpkg-deb -c
		"./usr/bin/edge-agent":                        "-rwxr-xr-x root/root",
		"./etc/edge-agent/agent.toml":                 "-rw-r----- root/root", // postinst gives it group edge-agent
		"./usr/lib/systemd/system/edge-agent.service": "-rw-r--r-- root/root",
		"./usr/lib/sysusers.d/edge-agent.conf":        "-rw-r--r-- root/root",
		"./usr/share/doc/edge-agent/README.md.gz":     "-rw-r--r-- root/root",
	}
	machines := map[string]elf.Machine{"armhf": elf.EM_ARM, "arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}
	goarch := map[string]string{"armhf": "arm", "arm64": "arm64", "amd64": "amd64"}
	for _, arch := range arches {
		deb := debs[arch]
		t.Run(arch, func(t *testing.T) {
			if want := "edge-agent_" + v["DEB_VERSION"] + "_" + arch + ".deb"; filepath.Base(deb) != want {
				t.Errorf("file %s, want %s", filepath.Base(deb), want)
			}
			fields := map[string]string{}
			for _, l := range strings.Split(run(t, nil, "dpkg-deb", "-f", deb), "\n") {
				if k, val, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, " ") {
					fields[k] = val
				}
			}
			for k, want := range map[string]string{"Package": "edge-agent", "Version": v["DEB_VERSION"], "Architecture": arch} {
				if fields[k] != want {
					t.Errorf("%s: %q, want %q", k, fields[k], want)
				}
			}
			for _, k := range []string{"Depends", "Pre-Depends"} { // a static binary needs nothing
				if fields[k] != "" {
					t.Errorf("%s: %q, want none", k, fields[k])
				}
			}
			if n, err := strconv.Atoi(fields["Installed-Size"]); err != nil || n < 1000 {
				t.Errorf("Installed-Size %q", fields["Installed-Size"])
			}
			if fields["Maintainer"] == "" || fields["Description"] == "" {
				t.Errorf("fields %v", fields)
			}

			seen := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(run(t, nil, "dpkg-deb", "-c", deb)), "\n") {
				f := strings.Fields(l)
				mode, owner, path := f[0], f[1], f[len(f)-1]
				if owner != "root/root" {
					t.Errorf("%s owned by %s", path, owner)
				}
				if strings.HasPrefix(mode, "d") {
					if mode != "drwxr-xr-x" {
						t.Errorf("directory %s mode %s", path, mode)
					}
					continue
				}
				want, ok := wantFiles[path]
				if !ok {
					t.Errorf("unexpected file %s", l)
					continue
				}
				seen[path] = true
				if mode+" "+owner != want {
					t.Errorf("%s: %s %s, want %s", path, mode, owner, want)
				}
			}
			for p := range wantFiles {
				if !seen[p] {
					t.Errorf("%s missing", p)
				}
			}
			if got := run(t, nil, "dpkg-deb", "-I", deb, "conffiles"); got != "/etc/edge-agent/agent.toml\n" {
				t.Errorf("conffiles %q", got)
			}

			// Maintainer scripts: executable, valid sh, with the shared functions pasted in.
			ctl := t.TempDir()
			run(t, nil, "dpkg-deb", "-e", deb, ctl)
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				p := filepath.Join(ctl, s)
				st, err := os.Stat(p)
				if err != nil || st.Mode().Perm() != 0o755 {
					t.Fatalf("%s: %v %v", s, st, err)
				}
				body, _ := os.ReadFile(p)
				if strings.Contains(string(body), "#LIB#") || !strings.Contains(string(body), "ea_systemd_running()") {
					t.Errorf("%s: shared functions not pasted in", s)
				}
				run(t, nil, "sh", "-n", p)
			}

			// The binary: static, for the package's architecture, stamped, with the shipped build tags.
			data := t.TempDir()
			run(t, nil, "dpkg-deb", "-x", deb, data)
			bin := filepath.Join(data, "usr/bin/edge-agent")
			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			if ef.Machine != machines[arch] {
				t.Errorf("ELF machine %v, want %v", ef.Machine, machines[arch])
			}
			if p := ef.Section(".interp"); p != nil {
				t.Errorf("dynamically linked (has .interp)")
			}
			bi, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			if settings["GOARCH"] != goarch[arch] || settings["CGO_ENABLED"] != "0" || !strings.Contains(settings["-tags"], "nethttpomithttp2") {
				t.Errorf("build settings %v", settings)
			}
			if arch == "armhf" && settings["GOARM"] != "6" {
				t.Errorf("armhf built with GOARM=%q, want 6 (Raspberry Pi OS armhf is ARMv6)", settings["GOARM"])
			}
			// Stamped by scripts/version.sh (-trimpath keeps -ldflags out of the build info: run it).
			runner := map[string][]string{"amd64": nil, "arm64": {"qemu-aarch64-static"}, "armhf": {"qemu-arm-static", "-cpu", "arm1176"}}[arch]
			if runtime.GOARCH != "amd64" {
				return // the runners above are for an amd64 machine
			}
			need(t, append(runner, "true")[0])
			out := run(t, nil, append(runner, bin, "version")[0], append(runner, bin, "version")[1:]...)
			for _, want := range []string{"version: " + v["VERSION"] + "\n", "commit: " + v["COMMIT"] + "\n", "build date: " + v["DATE"] + "\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in\n%s", want, out)
				}
			}
		})
	}
}

// The armhf binary runs on an ARMv6 CPU (qemu's arm1176, the Pi Zero/1's core). The emulated CPU
// does refuse ARMv7 instructions: a GOARM=7 build of an empty program dies there.
func TestArmhfRunsOnARMv6(t *testing.T) {
	need(t, "qemu-arm-static")
	data := t.TempDir()
	run(t, nil, "dpkg-deb", "-x", debs(t)["armhf"], data)
	out := run(t, nil, "qemu-arm-static", "-cpu", "arm1176", filepath.Join(data, "usr/bin/edge-agent"), "version")
	v := versions(t)
	for _, want := range []string{"version: " + v["VERSION"] + "\n", "commit: " + v["COMMIT"] + "\n", "platform: linux/arm/v6\n", "queue format: "} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}

	dir := t.TempDir()
	for name, body := range map[string]string{"main.go": "package main\n\nfunc main() {}\n", "go.mod": "module armv7probe\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}, "go", "build", "-C", dir, "-o", "v7", ".")
	if err := exec.Command("qemu-arm-static", "-cpu", "arm1176", filepath.Join(dir, "v7")).Run(); err == nil {
		t.Fatal("a GOARM=7 binary ran on the emulated ARMv6 CPU: the check above proves nothing")
	}
}

// newDpkgRoot is an empty dpkg database in a throw-away root.
func newDpkgRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dpkg runs dpkg on root only: --root moves the database and the files there, and the maintainer
// scripts run without chroot with DPKG_ROOT=root, which they prefix to every path they touch.
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	if root == "" || root == "/" {
		t.Fatal("refusing to run dpkg on the real system")
	}
	return run(t, nil, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-not-root",
		"--log=" + filepath.Join(root, "dpkg.log")}, args...)...)
}

// hostState is what must not change on this machine while packages go into throw-away roots.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"/var/lib/dpkg/status", "/etc/passwd", "/etc/group"} {
		data, _ := os.ReadFile(f)
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %x\n", f, sum)
	}
	for _, p := range []string{"/usr/bin/edge-agent", "/etc/edge-agent", "/var/lib/edge-agent",
		"/usr/lib/systemd/system/edge-agent.service", "/etc/systemd/system/edge-agent.service"} {
		_, err := os.Lstat(p)
		fmt.Fprintf(&b, "%s exists=%v\n", p, err == nil)
	}
	return b.String()
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// groupID reads a group's id from root's /etc/group.
func groupID(t *testing.T, root, name string) int {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatalf("no /etc/group in the root: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ":")
		if len(p) > 2 && p[0] == name {
			id, _ := strconv.Atoi(p[2])
			return id
		}
	}
	t.Fatalf("no group %s in the root's /etc/group", name)
	return 0
}

func ownerOf(t *testing.T, p string) (mode fs.FileMode, uid, gid int) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return st.Mode().Perm(), int(s.Uid), int(s.Gid)
}

// The amd64 package in a throw-away root: install (maintainer scripts without systemd), upgrade in
// place, remove (the queue stays), purge (it goes). The machine's own dpkg database, users and
// directories are the same afterwards.
func TestDebInstallRemovePurge(t *testing.T) {
	need(t, "dpkg", "systemctl")
	deb := debs(t)["amd64"]
	before := hostState(t)
	defer func() {
		if after := hostState(t); after != before {
			t.Errorf("the machine itself changed:\nbefore\n%s\nafter\n%s", before, after)
		}
	}()
	root := newDpkgRoot(t)
	at := func(p string) string { return filepath.Join(root, p) }

	dpkg(t, root, "--install", deb)
	if st := dpkg(t, root, "--status", "edge-agent"); !strings.Contains(st, "Status: install ok installed") {
		t.Fatalf("dpkg --status:\n%s", st)
	}
	out := run(t, nil, at("usr/bin/edge-agent"), "version")
	if !strings.Contains(out, "version: "+versions(t)["VERSION"]+"\n") {
		t.Errorf("installed binary: %s", out)
	}
	passwd, _ := os.ReadFile(at("etc/passwd"))
	if !regexp.MustCompile(`(?m)^edge-agent:x:\d+:\d+:[^:]*:/var/lib/edge-agent:/usr/sbin/nologin$`).Match(passwd) {
		t.Errorf("no edge-agent user in the root's /etc/passwd:\n%s", passwd)
	}
	gid := groupID(t, root, "edge-agent")
	if mode, uid, g := ownerOf(t, at("etc/edge-agent/agent.toml")); mode != 0o640 || uid != 0 || g != gid {
		t.Errorf("agent.toml %04o %d:%d, want 0640 0:%d (root:edge-agent)", mode, uid, g, gid)
	}
	if mode, uid, _ := ownerOf(t, at("usr/bin/edge-agent")); mode != 0o755 || uid != 0 {
		t.Errorf("binary %04o uid %d", mode, uid)
	}
	wants := at("etc/systemd/system/multi-user.target.wants/edge-agent.service")
	if target, err := os.Readlink(wants); err != nil || target != "/usr/lib/systemd/system/edge-agent.service" {
		t.Errorf("not enabled: %q %v", target, err)
	}

	// The admin edits the config; the agent fills its queue.
	if err := os.WriteFile(at("etc/edge-agent/agent.toml"), []byte("client_id = \"edited\"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(at("var/lib/edge-agent"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(at("var/lib/edge-agent/queue.db"), []byte("queued"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Reinstalling (an upgrade to the same version) keeps both and stays enabled.
	dpkg(t, root, "--install", deb)
	if b, _ := os.ReadFile(at("etc/edge-agent/agent.toml")); string(b) != "client_id = \"edited\"\n" {
		t.Errorf("the upgrade replaced the edited conffile: %q", b)
	}
	if !exists(at("var/lib/edge-agent/queue.db")) || !exists(wants) {
		t.Errorf("upgrade lost the queue or the enablement")
	}

	dpkg(t, root, "--remove", "edge-agent")
	if exists(at("usr/bin/edge-agent")) || exists(at("usr/lib/systemd/system/edge-agent.service")) || exists(wants) {
		t.Errorf("remove left the binary, the unit or its enablement")
	}
	if !exists(at("var/lib/edge-agent/queue.db")) || !exists(at("etc/edge-agent/agent.toml")) {
		t.Errorf("remove deleted the queue or the config")
	}

	dpkg(t, root, "--purge", "edge-agent")
	for _, p := range []string{"var/lib/edge-agent", "etc/edge-agent"} {
		if exists(at(p)) {
			t.Errorf("purge left %s", p)
		}
	}
	if st := dpkg(t, root, "--list"); strings.Contains(st, "edge-agent") {
		t.Errorf("still known to the root's dpkg:\n%s", st)
	}
}

// manifest describes every file under root: path, type, mode, owner and content hash.
func manifest(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := st.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d:%d", rel, st.Mode(), s.Uid, s.Gid)
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case st.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			sum := sha256.Sum256(data)
			b.WriteString(" " + hex.EncodeToString(sum[:8]))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// scripts/install.sh into a throw-away root: installing twice gives the same files, uninstall keeps
// the config and the queue, purge removes them.
func TestInstallScript(t *testing.T) {
	need(t, "systemctl", "go")
	before := hostState(t)
	defer func() {
		if after := hostState(t); after != before {
			t.Errorf("the machine itself changed:\nbefore\n%s\nafter\n%s", before, after)
		}
	}()
	bin := filepath.Join(t.TempDir(), "edge-agent")
	run(t, []string{"CGO_ENABLED=0"}, "go", "build", "-o", bin, "../cmd/agent")
	root := t.TempDir()
	at := func(p string) string { return filepath.Join(root, p) }
	install := func(args ...string) string {
		t.Helper()
		return run(t, nil, "sh", append([]string{filepath.Join(repo(t), "scripts/install.sh"), "--root", root}, args...)...)
	}

	install("--binary", bin)
	first := manifest(t, root)
	install("--binary", bin)
	if second := manifest(t, root); second != first {
		t.Errorf("a second install changed the root:\nfirst\n%s\nsecond\n%s", first, second)
	}
	for _, p := range []string{"usr/local/bin/edge-agent", "etc/systemd/system/edge-agent.service", "etc/sysusers.d/edge-agent.conf",
		"etc/systemd/system/multi-user.target.wants/edge-agent.service"} {
		if !exists(at(p)) {
			t.Errorf("%s not installed", p)
		}
	}
	unit, _ := os.ReadFile(at("etc/systemd/system/edge-agent.service"))
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/edge-agent run --config /etc/edge-agent/agent.toml\n") {
		t.Errorf("ExecStart does not point at the installed binary")
	}
	gid := groupID(t, root, "edge-agent")
	if mode, uid, g := ownerOf(t, at("etc/edge-agent/agent.toml")); mode != 0o640 || uid != 0 || g != gid {
		t.Errorf("agent.toml %04o %d:%d, want 0640 0:%d", mode, uid, g, gid)
	}

	// An edited config survives a reinstall; uninstall keeps it and the queue.
	if err := os.WriteFile(at("etc/edge-agent/agent.toml"), []byte("client_id = \"edited\"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(at("var/lib/edge-agent"), 0o700)
	if err := os.WriteFile(at("var/lib/edge-agent/queue.db"), []byte("queued"), 0o600); err != nil {
		t.Fatal(err)
	}
	install("--binary", bin, "--prefix", "/opt/edge")
	if b, _ := os.ReadFile(at("etc/edge-agent/agent.toml")); string(b) != "client_id = \"edited\"\n" {
		t.Errorf("reinstall replaced the config: %q", b)
	}
	unit, _ = os.ReadFile(at("etc/systemd/system/edge-agent.service"))
	if !strings.Contains(string(unit), "\nExecStart=/opt/edge/bin/edge-agent run ") {
		t.Errorf("--prefix not in ExecStart")
	}
	install("--uninstall", "--prefix", "/opt/edge")
	for _, p := range []string{"opt/edge/bin/edge-agent", "etc/systemd/system/edge-agent.service", "etc/sysusers.d/edge-agent.conf",
		"etc/systemd/system/multi-user.target.wants/edge-agent.service"} {
		if exists(at(p)) {
			t.Errorf("uninstall left %s", p)
		}
	}
	if !exists(at("etc/edge-agent/agent.toml")) || !exists(at("var/lib/edge-agent/queue.db")) {
		t.Errorf("uninstall removed the config or the queue")
	}
	install("--binary", bin)
	install("--purge")
	for _, p := range []string{"usr/local/bin/edge-agent", "etc/edge-agent", "var/lib/edge-agent", "etc/systemd/system/edge-agent.service"} {
		if exists(at(p)) {
			t.Errorf("purge left %s", p)
		}
	}
}

// Without systemd-sysusers the user comes from useradd, still into the root's /etc/passwd only.
func TestCreateUserWithUseradd(t *testing.T) {
	need(t, "useradd", "sh", "awk", "grep")
	path := t.TempDir() // a PATH without systemd-sysusers
	for _, tool := range []string{"sh", "awk", "grep", "useradd", "stat", "chgrp", "chmod"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(path, tool)); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f, body := range map[string]string{"passwd": "root:x:0:0:root:/root:/bin/sh\n", "group": "root:x:0:\n",
		"shadow": "root:*:19000:0:99999:7:::\n", "gshadow": "root:*::\n"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(path, "sh"), "-c", `set -e; ROOT=$1; . "$2"; ea_create_user; ea_create_user`, "sh", root, filepath.Join(repo(t), "packaging/lib.sh"))
	cmd.Env = []string{"PATH=" + path}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if n := strings.Count(string(passwd), "\nedge-agent:"); n != 1 || !strings.Contains(string(passwd), ":/var/lib/edge-agent:/usr/sbin/nologin\n") {
		t.Errorf("root's /etc/passwd:\n%s", passwd)
	}
	groupID(t, root, "edge-agent")
}
