package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// sandboxExec is the only program fence trusts to apply a Seatbelt profile;
// never looked up in PATH.
const sandboxExec = "/usr/bin/sandbox-exec"

// Process is a running sandboxed command.
type Process struct {
	// TTY is the PTY master of an interactive session, nil otherwise.
	TTY *os.File

	cmd     *exec.Cmd
	tmpDir  string
	closers []io.Closer

	done     chan struct{} // closed when Wait has collected the command
	waitOnce sync.Once
	waitCode int
	killedBy syscall.Signal // set by Wait
	waitErr  error
}

// shimConfig is what Start tells the fence binary running as the exec shim
// inside sandbox-exec (see [RunInit]).
type shimConfig struct {
	Args []string `json:"args"`
}

// Start starts the sandboxed process described by spec: the fence binary,
// under /usr/bin/sandbox-exec with the profile of [SeatbeltProfile], execs
// the command once it has checked that the sandbox is in force. Start
// returns when the command runs; an error is a fence failure and the
// command has not run. ctx bounds the whole life of the process: when it is
// cancelled the command is killed.
//
// On macOS there is no network namespace: the session's relay listens on
// two ephemeral ports of the host's 127.0.0.1, which the profile alone lets
// the command reach, and the proxy variables name them.
func Start(ctx context.Context, spec *Spec) (_ *Process, err error) {
	if len(spec.Args) == 0 {
		return nil, errors.New("no command to run")
	}
	if Inside() {
		return nil, &hintedError{err: errors.New("start the sandbox: already inside a fence sandbox"),
			hint: "macOS cannot apply a sandbox inside another one; leave the fence session first"}
	}
	if _, err := os.Stat(sandboxExec); err != nil {
		return nil, &hintedError{err: fmt.Errorf("start the sandbox: %w", err),
			hint: "fence needs /usr/bin/sandbox-exec, part of macOS; run 'fence doctor'"}
	}
	dir := spec.Dir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the fence binary: %w", err)
	}
	exe = canonical(exe)
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("find the home directory: %w", err)
	}
	home = canonical(home)

	p := &Process{done: make(chan struct{})}
	defer func() {
		if err != nil {
			p.cleanup()
			if p.TTY != nil {
				p.TTY.Close()
			}
		}
	}()

	// The session's private TMPDIR, removed when the command ends.
	tmp, err := os.MkdirTemp("", "fence-")
	if err != nil {
		return nil, fmt.Errorf("create the sandbox TMPDIR: %w", err)
	}
	p.tmpDir = canonical(tmp)

	opts := SeatbeltOptions{Home: home, Executable: exe, TmpDir: p.tmpDir}
	if spec.Relay != "" {
		for _, r := range []struct {
			sock string
			port *int
		}{{"http.sock", &opts.HTTPProxyPort}, {"socks.sock", &opts.SOCKSPort}} {
			ln, err := listenRelay(filepath.Join(spec.Relay, r.sock))
			if err != nil {
				return nil, err
			}
			p.closers = append(p.closers, ln)
			*r.port = ln.Addr().(*net.TCPAddr).Port
		}
	}
	env := SandboxEnv(spec.Env, EnvOptions{Pass: spec.Policy.EnvPass, TMPDIR: p.tmpDir, Session: spec.SessionID, Fence: exe})
	env = seatbeltRelayEnv(env, opts.HTTPProxyPort, opts.SOCKSPort)

	cmd := &exec.Cmd{
		Path: sandboxExec,
		Env:  env,
		Dir:  dir,
		// A new session: the command cannot reach the caller's terminal as
		// its controlling terminal (TIOCSTI needs one).
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	var slave *os.File
	if spec.TTY {
		master, s, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("open a PTY: %w", err)
		}
		p.TTY, slave = master, s
		if spec.Rows > 0 && spec.Cols > 0 {
			pty.Setsize(master, &pty.Winsize{Rows: spec.Rows, Cols: spec.Cols})
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
		opts.TTYs = []string{slave.Name()}
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = orStd(spec.Stdin, os.Stdin), orStd(spec.Stdout, os.Stdout), orStd(spec.Stderr, os.Stderr)
		opts.TTYs = terminalNames(cmd.Stdin.(*os.File), cmd.Stdout.(*os.File), cmd.Stderr.(*os.File))
	}
	if slave != nil {
		defer slave.Close()
	}

	protected, err := resolveProtectedDarwin(spec.Policy, home, exe)
	if err != nil {
		return nil, err
	}
	opts.ExtraProtected = protected
	profile := SeatbeltProfile(spec.Policy, opts)
	if spec.Debug != nil {
		fmt.Fprintf(spec.Debug, "fence: debug: relay ports: http 127.0.0.1:%d, socks 127.0.0.1:%d\n", opts.HTTPProxyPort, opts.SOCKSPort)
		fmt.Fprintf(spec.Debug, "fence: debug: TMPDIR %s\n", p.tmpDir)
		for _, l := range strings.Split(strings.TrimSuffix(profile, "\n"), "\n") {
			fmt.Fprintf(spec.Debug, "fence: debug: seatbelt: %s\n", l)
		}
	}

	// fd 3 carries the shim's configuration in, fd 4 its report out: "R"
	// once the sandbox is verified in force, then a status and message if
	// the command cannot be executed. EOF after "R" means exec succeeded.
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer repR.Close()
	defer repW.Close()
	cmd.ExtraFiles = []*os.File{cfgR, repW}
	cmd.Args = []string{"sandbox-exec", "-p", profile, "--", exe, InitArg}

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", sandboxExec, err)
	}
	p.cmd = cmd
	cfgR.Close()
	repW.Close()
	if slave != nil {
		slave.Close()
	}
	go func() {
		json.NewEncoder(cfgW).Encode(shimConfig{Args: spec.Args})
		cfgW.Close()
	}()
	go func() {
		select {
		case <-ctx.Done():
			killSession(p.cmd.Process.Pid)
		case <-p.done:
		}
	}()

	report, _ := io.ReadAll(repR)
	switch {
	case len(report) == 0:
		// sandbox-exec failed before the shim ran: it refused the profile
		// or could not apply it. Its own message went to stderr.
		code, _ := p.Wait()
		return nil, &hintedError{err: fmt.Errorf("sandbox-exec could not apply the sandbox (exit status %d)", code),
			hint: "run 'fence doctor'; sandbox-exec cannot run inside another sandbox (an editor's or agent's)"}
	case report[0] != 'R':
		p.Wait()
		return nil, fmt.Errorf("BUG: unexpected report from the sandbox shim: %q", report)
	}
	// The shim reports a command that cannot run and exits with its
	// status (126/127); Wait collects it.
	return p, nil
}

// resolveProtectedDarwin returns [ResolveProtected] plus the targets of
// protected paths that are symlinks (a dotfile manager's ~/.bashrc ->
// dotfiles/bashrc: Seatbelt checks the resolved path, so the target must be
// denied too, ATTACKS.md F-06). A protected file with more than one hard
// link is refused: Seatbelt judges a write by the name used, and another
// name could change it (F-03).
func resolveProtectedDarwin(p Policy, home, exe string) ([]ProtectedPath, error) {
	protected := ResolveProtected(p, home, exe)
	var extra []ProtectedPath
	for _, pp := range protected {
		fi, err := os.Lstat(pp.Path)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			t, err := filepath.EvalSymlinks(pp.Path)
			if err != nil {
				continue
			}
			if fi, err = os.Stat(t); err != nil {
				continue
			}
			extra = append(extra, ProtectedPath{Path: t, Dir: pp.Dir || fi.IsDir(), Reason: pp.Reason + " (symlink target)"})
			pp.Path = t
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			return nil, &hintedError{
				err: fmt.Errorf("protected file %q (%s) has %d hard links; another name could be used to change it", pp.Path, pp.Reason, st.Nlink),
				hint: fmt.Sprintf("find the other names with: find / -xdev -samefile %q; then give %q its own copy: cp -p %q %q.tmp && mv %q.tmp %q",
					pp.Path, pp.Path, pp.Path, pp.Path, pp.Path, pp.Path)}
		}
	}
	return append(protected, extra...), nil
}

// orStd returns f, or std when f is nil.
func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

// canonical resolves symlinks in path; Seatbelt matches resolved paths.
func canonical(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return filepath.Clean(path)
}

// terminalNames returns the /dev/ttys* devices among files: the terminal
// a plain run's stdio is connected to, which the profile must let the
// command keep using.
func terminalNames(files ...*os.File) []string {
	var rdevs []uint64
	for _, f := range files {
		fi, err := f.Stat()
		if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			rdevs = append(rdevs, uint64(st.Rdev))
		}
	}
	if len(rdevs) == 0 {
		return nil
	}
	ents, err := os.ReadDir("/dev")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "ttys") {
			continue
		}
		var st unix.Stat_t
		path := "/dev/" + e.Name()
		if unix.Stat(path, &st) != nil {
			continue
		}
		for _, r := range rdevs {
			if uint64(st.Rdev) == r {
				out = append(out, path)
				break
			}
		}
	}
	return out
}

// killSession kills every process of the user in session sid (the
// command's: Start gives it a session of its own). Background jobs must not
// outlive the session, as on Linux, where the pid namespace ends with it. A
// process that left the session with setsid survives, still sandboxed, but
// without network (the relay is closed) or TMPDIR.
func killSession(sid int) {
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.uid", os.Getuid())
	if err != nil {
		return
	}
	for _, kp := range procs {
		pid := int(kp.Proc.P_pid)
		if pid <= 1 {
			continue
		}
		if s, err := unix.Getsid(pid); err == nil && s == sid {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func (p *Process) cleanup() {
	for _, c := range p.closers {
		c.Close()
	}
	p.closers = nil
	if p.tmpDir != "" {
		os.RemoveAll(p.tmpDir)
	}
}

// Wait waits for the command and returns its exit status (DESIGN.md §2):
// its own status, 128+N when it died of signal N, 126/127 when it could not
// be executed or found. err is set only when the sandbox itself failed.
// The session's TMPDIR is removed and its relay closed.
func (p *Process) Wait() (int, error) {
	p.waitOnce.Do(func() {
		err := p.cmd.Wait()
		close(p.done)
		killSession(p.cmd.Process.Pid)
		p.cleanup()
		var ee *exec.ExitError
		switch {
		case err == nil:
			p.waitCode = 0
		case errors.As(err, &ee):
			ws, ok := ee.Sys().(syscall.WaitStatus)
			switch {
			case ok && ws.Signaled():
				p.waitCode = 128 + int(ws.Signal())
				p.killedBy = ws.Signal()
			default:
				p.waitCode = ee.ExitCode()
			}
		default:
			p.waitCode = 125
			p.waitErr = fmt.Errorf("wait for the sandboxed command: %w", err)
		}
	})
	return p.waitCode, p.waitErr
}

// Offline is always false here: whether anything reached the network
// session is not known.
func (p *Process) Offline() bool { return false }

// Suspend stops the command's process group (SIGSTOP): what a terminal's
// Ctrl-Z stops for a command started without fence. The command runs in a
// session of its own, so the terminal's SIGTSTP reaches only fence.
// Processes the command moved to other groups are not stopped here.
func (p *Process) Suspend() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP) }

// Resume continues what Suspend stopped.
func (p *Process) Resume() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT) }

// Stopped is nil here: a stopped command is not followed (Linux only).
func (p *Process) Stopped() <-chan struct{} { return nil }

// Continue continues the command's process group.
func (p *Process) Continue() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT) }

// CanStopToLeave says whether Spec.StopToLeave works on this system.
const CanStopToLeave = false

// CanPassStdout says whether a TTY session can give the command a stdout
// other than its PTY: not here, where the PTY is all of its stdio.
const CanPassStdout = false

// LeftFor is always "": Spec.StopToLeave is Linux only.
func (p *Process) LeftFor() string { return "" }

// KilledBy is, once Wait returned, the signal that killed the command, or
// 0 when it exited (with whatever status).
func (p *Process) KilledBy() syscall.Signal { return p.killedBy }

// Signal sends sig to the command's process group (the command runs in a
// session of its own, so a terminal's Ctrl-C reaches only fence).
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return p.cmd.Process.Signal(sig)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, s); err != nil {
		return p.cmd.Process.Signal(sig)
	}
	return nil
}

// RunInit is the fence binary's entry point when sandbox-exec starts it
// ([InitArg]): it checks that the sandbox is in force, reports to Start,
// and execs the command. It returns only when the command cannot run.
func RunInit() int {
	cfgF, rep := os.NewFile(3, "fence-config"), os.NewFile(4, "fence-report")
	if cfgF == nil || rep == nil {
		fmt.Fprintln(os.Stderr, "fence: sandbox init: started without its descriptors")
		return 125
	}
	// Only fds 0-2 may reach the command, whatever leaked into fence from
	// its parent (ATTACKS.md X-08): 3 and 4 are ours, the rest theirs.
	if ents, err := os.ReadDir("/dev/fd"); err == nil {
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				unix.CloseOnExec(fd)
			}
		}
	}
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	var cfg shimConfig
	if err := json.NewDecoder(cfgF).Decode(&cfg); err != nil || len(cfg.Args) == 0 {
		fmt.Fprintf(os.Stderr, "fence: sandbox init: no configuration: %v\n", err)
		return 125
	}
	cfgF.Close()
	if !Inside() {
		// sandbox-exec ran us without the profile in force: never run
		// the command unsandboxed.
		fmt.Fprintln(os.Stderr, "fence: sandbox init: the Seatbelt profile is not in force")
		return 125
	}
	rep.Write([]byte("R"))
	path, code, err := lookPathDarwin(cfg.Args[0], os.Environ())
	if err == nil {
		err = syscall.Exec(path, cfg.Args, os.Environ())
		code = 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
	}
	fmt.Fprintf(os.Stderr, "fence: %s: %v\n", cfg.Args[0], err)
	fmt.Fprintf(rep, "%d", code)
	return code
}

// lookPathDarwin finds name in env's PATH, and returns the exit status to
// use when it cannot be run (127 not found, 126 not executable).
func lookPathDarwin(name string, env []string) (string, int, error) {
	if strings.Contains(name, "/") {
		fi, err := os.Stat(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "", 127, errors.New("no such file or directory")
		case err != nil:
			return "", 126, err
		case fi.IsDir():
			return "", 126, errors.New("is a directory")
		}
		return name, 0, nil
	}
	pathEnv, _ := lookupEnv(env, "PATH")
	if pathEnv == "" {
		pathEnv = "/usr/bin:/bin:/usr/sbin:/sbin"
	}
	found := ""
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if unix.Access(p, unix.X_OK) == nil {
			return p, 0, nil
		}
		if found == "" {
			found = p
		}
	}
	if found != "" {
		return "", 126, errors.New("permission denied")
	}
	return "", 127, errors.New("command not found")
}

// PlanAhead does nothing here: the profile is built when the sandbox
// starts.
func (spec *Spec) PlanAhead() error { return nil }
