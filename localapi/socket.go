package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/config"
)

// listenSocket listens on a Unix socket at path (the config key socket) with the given mode. The
// socket is bound directly at path, so every path Linux can bind (up to config.MaxSocketPath bytes)
// works, and it is never reachable with a wider mode than asked for: see bindUnix. A stale socket
// left by a crash is replaced; a live one (another agent answering) is an error.
func listenSocket(path string, mode os.FileMode) (*net.UnixListener, error) {
	switch {
	case len(path) > config.MaxSocketPath:
		return nil, fmt.Errorf("localapi: socket = %q is %d bytes; Linux binds Unix socket paths of at most %d bytes: choose a shorter socket path",
			path, len(path), config.MaxSocketPath)
	case path == "" || strings.IndexByte(path, 0) >= 0:
		return nil, fmt.Errorf("localapi: socket %q is not a usable path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("localapi: socket directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("localapi: socket %s is in use: is another edge-agent running?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("localapi: remove stale socket %s: %w", path, err)
		}
	}
	ln, err := bindUnix(path, mode)
	if err != nil {
		return nil, err
	}
	// The umask may have narrowed the mode the socket was created with; this only ever widens it
	// back to exactly mode.
	if err := os.Chmod(path, mode.Perm()); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("localapi: chmod socket %s to %04o: %w", path, mode.Perm(), err)
	}
	return ln, nil
}

// socketBacklog is the listen backlog; the kernel caps it at net.core.somaxconn.
const socketBacklog = 4096

// bindUnix creates a listening Unix socket at path whose file is created with at most mode: on Linux,
// unix_bind creates the socket inode with the mode of the socket's own inode minus the umask, so
// fchmod on the socket before bind sets it (without it the file would be 0777 minus the umask until
// a later chmod). The listener does not remove path when closed; Server.Shutdown does.
func bindUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("localapi: socket %s: %w", path, os.NewSyscallError("socket", err))
	}
	fail := func(step string, err error) (*net.UnixListener, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("localapi: listen on socket %s: %w", path, os.NewSyscallError(step, err))
	}
	if err := syscall.Fchmod(fd, uint32(mode.Perm())); err != nil {
		return fail("fchmod", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return fail("bind", err)
	}
	if err := syscall.Listen(fd, socketBacklog); err != nil {
		os.Remove(path)
		return fail("listen", err)
	}
	f := os.NewFile(uintptr(fd), path)
	fl, err := net.FileListener(f) // dups fd
	f.Close()
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("localapi: listen on socket %s: %w", path, err)
	}
	ln, ok := fl.(*net.UnixListener)
	if !ok {
		fl.Close()
		os.Remove(path)
		return nil, fmt.Errorf("localapi: listen on socket %s: got a %T", path, fl)
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// peer is the identity of the process at the other end of a local API connection (SO_PEERCRED),
// read once when the connection is accepted, with its groups (primary and supplementary) read once
// in connContext: a request, or each line of an NDJSON batch, never reads them again, and a pid
// reused later cannot lend its groups to the connection.
type peer struct {
	pid      int32
	uid, gid uint32
	groups   []uint32 // only when [[access]] rules need them
	known    bool
}

type peerKey struct{}

// peerCred returns the SO_PEERCRED credentials of a Unix socket connection's other end.
func peerCred(c net.Conn) (*syscall.Ucred, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return nil, false
	}
	return cred, true
}

// connContext attaches the caller's credentials, read when the connection was accepted, and its
// groups to the connection's context (http.Server.ConnContext): once per connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	lc, ok := c.(*limitedConn)
	if !ok || lc.cred == nil {
		return ctx
	}
	p := peer{pid: lc.cred.Pid, uid: lc.cred.Uid, gid: lc.cred.Gid, known: true}
	if s.access.needsGroups() {
		p.groups = append([]uint32{p.gid}, s.groupsOf(p.pid)...)
	}
	return context.WithValue(ctx, peerKey{}, p)
}

func peerFrom(ctx context.Context) peer {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p
}

// procGroups returns the supplementary group ids of process pid, read from /proc.
func procGroups(pid int32) []uint32 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	var gs []uint32
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if g, err := strconv.ParseUint(f, 10, 32); err == nil {
				gs = append(gs, uint32(g))
			}
		}
	}
	return gs
}

var errForbidden = errors.New("forbidden")
