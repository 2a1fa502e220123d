package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/proxy/control"
)

func init() {
	register(&command{
		name:    "monitor",
		args:    "[DIR] [--json]",
		summary: "live stream of blocked events (all sessions, or one project)",
		run:     runMonitor,
	})
}

func runMonitor(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("monitor"))
	asJSON := fs.Bool("json", false, "one JSON object per event (for tools)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("fence monitor: at most one DIR")
	}
	root := ""
	if len(pos) == 1 {
		dir, err := filepath.Abs(pos[0])
		if err != nil {
			return err
		}
		r, ok := config.FindRoot(dir)
		if !ok {
			return withHint(fmt.Errorf("no .fence.toml in %s or above", config.DisplayPath(dir)), "run 'fence monitor' without DIR to see every session")
		}
		root = r
	}
	rt, err := runtimeDir()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdio.Out)
	for attempt := 0; ; attempt++ {
		c, err := connectDaemon(rt, true)
		if err == nil {
			_, err = c.Call(control.Request{Op: control.OpMonitor, Root: root})
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			if attempt > 0 && errors.Is(err, control.ErrNoDaemon) && attempt < 20 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return withDaemonHint(fmt.Errorf("monitor: %w", err))
		}
		if attempt > 0 && !*asJSON {
			fmt.Fprintln(stdio.Err, "fence: monitor: reconnected to a new daemon")
		}
		attempt = 0
		stop := context.AfterFunc(ctx, func() { c.Close() })
		for {
			e, err := c.Next()
			if err != nil {
				break
			}
			if *asJSON {
				// encoding/json escapes control characters: safe on a terminal.
				enc.Encode(e)
				continue
			}
			fmt.Fprintln(stdio.Out, monitorLine(e))
		}
		stop()
		c.Close()
		if ctx.Err() != nil {
			return nil
		}
		if !*asJSON {
			fmt.Fprintln(stdio.Err, "fence: monitor: the daemon went away; reconnecting")
		}
	}
}

// monitorLine is one human line: time, project, session, then the event.
func monitorLine(e proxy.Event) string {
	project := "-"
	if e.Project != "" {
		project = config.DisplayPath(e.Project)
	}
	return fmt.Sprintf("%s %s [%s] [fence:net] %s", e.Time.Format("15:04:05.000"), proxy.Escape(project), e.Session, e.Line())
}
