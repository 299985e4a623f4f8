package testproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// markerVar is the environment variable every child carries; its value is the pid
// of the test binary that started it.
const markerVar = "EDGE_AGENT_TEST_PARENT"

// Proc is one run of a child process (and its process group).
type Proc struct {
	name string
	cmd  *exec.Cmd
	pgid int
	done chan struct{} // closed once the process has exited and been reaped

	mu      sync.Mutex
	waitErr error
}

// Start runs name with args in dir (the test binary's when ""), with the test
// binary's environment plus env ("KEY=value", later entries win), stdout and
// stderr both to out (may be nil). The process leads a new process group.
func Start(out io.Writer, dir string, env []string, name string, args ...string) (*Proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), markerVar+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, pgid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id of the child (also its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is how the process ended (exec.Cmd.Wait's error); nil while it runs.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Stop sends sig to the process only (it is expected to shut its children down
// itself), waits up to grace for it to exit, and then kills the whole group.
// Whatever is left of the group afterwards (children that did not follow) is
// killed too. It returns once the process has been reaped; a no-op after exit.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	if p.Running() {
		_ = p.cmd.Process.Signal(sig)
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-timer.C:
		}
		timer.Stop()
	}
	p.Kill()
}

// Kill sends SIGKILL to the whole process group (kill -9 -PGID) and waits until
// the process has been reaped. Grandchildren that left the group (daemons) are
// not reached: see Leftovers.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	<-p.done
}

// ErrExited reports that a process ended while its caller was still waiting for it
// to become ready.
var ErrExited = errors.New("process exited")

// WaitReady polls ready every 50 ms until it reports true, the process exits
// (ErrExited, wrapping how it ended) or timeout passes (the process is then killed
// and an error says so). ready's last error, if any, is part of the timeout error.
func (p *Proc) WaitReady(timeout time.Duration, ready func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("not checked yet")
	for {
		if last = ready(); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s: %w before it was ready (%v; last check: %v)", p.name, ErrExited, p.Err(), last)
		case <-deadline.C:
			p.Kill()
			return fmt.Errorf("%s not ready after %v (killed it); last check: %v", p.name, timeout, last)
		case <-tick.C:
		}
	}
}
