package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/proxy/control"
	"github.com/fence-dev/fence/proxy/daemon"
)

func init() {
	register(&command{
		name:    "daemon",
		args:    "start|stop|status|run [--json]",
		summary: "manage the per-user proxy daemon (it also starts on demand)",
		run:     runDaemon,
	})
}

func runDaemon(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("daemon"))
	asJSON := fs.Bool("json", false, "status as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("fence daemon: want one of start, stop, status, run")
	}
	switch pos[0] {
	case "run":
		return daemonRun(ctx, stdio)
	case "start":
		rt, err := runtimeDir()
		if err != nil {
			return err
		}
		c, err := connectDaemon(rt, true)
		if err != nil {
			return withDaemonHint(err)
		}
		resp, err := c.Call(control.Request{Op: control.OpStatus})
		c.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdio.Out, "fence: daemon running (pid %d)\n", resp.Status.PID)
		return nil
	case "stop":
		rt := config.RuntimeDir()
		resp, err := control.Do(rt, control.Request{Op: control.OpStatus})
		if errors.Is(err, control.ErrNoDaemon) {
			fmt.Fprintln(stdio.Out, "fence: daemon not running")
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(resp.Status.Sessions); n > 0 {
			fmt.Fprintf(stdio.Err, "fence: %d running sessions lose their network until their daemon is back; they restart it by themselves\n", n)
		}
		if _, err := control.Do(rt, control.Request{Op: control.OpStop}); err != nil {
			return err
		}
		// Wait until it is done: its socket goes first, and it still
		// ends its sessions, its warm init and its log after that.
		if !daemon.WaitStopped(rt, 2*time.Second) {
			return fmt.Errorf("the daemon (pid %d) was told to stop but still runs after 2s", resp.Status.PID)
		}
		fmt.Fprintf(stdio.Out, "fence: daemon stopped (pid %d)\n", resp.Status.PID)
		return nil
	case "status":
		lines, v := daemonStatus(ctx, "")
		if *asJSON {
			enc := json.NewEncoder(stdio.Out)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		for _, l := range lines {
			fmt.Fprintln(stdio.Out, l)
		}
		return nil
	}
	return usagef("fence daemon: unknown action %q (want start, stop, status or run)", pos[0])
}

// daemonRun runs the daemon in the foreground until it is stopped, goes
// idle (FENCE_DAEMON_IDLE, default 5m) or ctx ends.
func daemonRun(ctx context.Context, stdio Stdio) error {
	rt, err := runtimeDir()
	if err != nil {
		return err
	}
	idle := 5 * time.Minute
	if v := os.Getenv("FENCE_DAEMON_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("FENCE_DAEMON_IDLE=%q: want a duration such as 30s or 5m", v)
		}
		idle = d
	}
	// The log carries names the sandbox chose (through go-socks5's own
	// messages too): escape them, someone will cat this file.
	lg := log.New(escapingWriter{stdio.Err}, "", log.LstdFlags|log.Lmicroseconds)
	err = daemon.Run(ctx, daemon.Options{Dir: rt, Resolve: resolveSession, Idle: idle, Log: lg, Inits: initPool()})
	if errors.Is(err, daemon.ErrRunning) {
		return &exitError{code: 1, err: withHint(err, "'fence daemon status' shows it; 'fence daemon stop' stops it")}
	}
	return err
}

// resolveSession is the daemon's policy resolver: config.Load on the
// session's inputs, the files to watch, and whether a changed config must
// wait for `fence allow`.
func resolveSession(spec control.Spec) (daemon.Resolution, error) {
	// config finds the user's files through the environment: resolve with
	// the client's. Loads are serialized so the swap is never observed.
	resolveMu.Lock()
	defer resolveMu.Unlock()
	defer withEnv(spec.Env)()
	res, err := config.Load(config.Options{Dir: spec.Dir, Settings: spec.Settings, Templates: spec.Templates, Publish: spec.Publish})
	if err != nil {
		return daemon.Resolution{}, err
	}
	out := daemon.Resolution{Root: res.Root, Rules: res.Network}
	out.Watch = append(out.Watch, res.ChainFiles()...)
	// A .fence.toml created or removed, and `fence allow` / `fence deny`.
	out.Watch = append(out.Watch, filepath.Join(res.Dir, config.ProjectFile), config.TrustDir()+string(filepath.Separator))
	if res.Root != "" {
		out.Watch = append(out.Watch, filepath.Join(res.Root, config.ProjectFile))
	}
	if res.Trust == config.Changed {
		// Said of a running session, which keeps the rules it had (not
		// res.Notices: a new session runs on the user policy alone).
		out.Keep = true
		what := "the config changed in a way that loosens the policy"
		if len(res.NewGrants) > 0 {
			what = fmt.Sprintf("%s changed since 'fence allow' (%s)", config.Printable(res.ConfigFile), strings.Join(res.NewGrants, ", "))
		}
		out.Notice = what + "; running sessions keep the policy they had; 'fence allow' applies the change"
	}
	return out, nil
}

// resolveMu serializes resolveSession: it swaps process environment
// variables for the duration of one config.Load.
var resolveMu sync.Mutex

// withEnv sets the [control.EnvKeys] variables to env's values (unset when
// absent) and returns the function that restores them.
func withEnv(env map[string]string) func() {
	if env == nil {
		return func() {}
	}
	type saved struct {
		v  string
		ok bool
	}
	old := map[string]saved{}
	for _, k := range control.EnvKeys {
		v, ok := os.LookupEnv(k)
		old[k] = saved{v, ok}
		if nv, ok := env[k]; ok {
			os.Setenv(k, nv)
		} else {
			os.Unsetenv(k)
		}
	}
	return func() {
		for k, s := range old {
			if s.ok {
				os.Setenv(k, s.v)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}

// escapingWriter escapes everything but newlines with [proxy.Escape].
type escapingWriter struct{ w io.Writer }

func (e escapingWriter) Write(p []byte) (int, error) {
	lines := strings.SplitAfter(string(p), "\n")
	var b strings.Builder
	for _, l := range lines {
		body, nl := strings.CutSuffix(l, "\n")
		b.WriteString(proxy.Escape(body))
		if nl {
			b.WriteByte('\n')
		}
	}
	if _, err := io.WriteString(e.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
