package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fence-dev/fence/proxy/control"
)

// sink accepts connections and discards what they send; its address.
func sink(b *testing.B) int {
	return serveTCP(b, func(c net.Conn) { io.Copy(io.Discard, c) })
}

// source serves /N as N bytes of zeros.
func source(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// pump writes total bytes to c and returns the rate in MiB/s.
func pump(b *testing.B, c net.Conn, total int64) float64 {
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	for n := total; n > 0; {
		k := min(n, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
	return float64(total) / (1 << 20) / time.Since(t0).Seconds()
}

func connectVia(b *testing.B, sock string, port int) net.Conn {
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("CONNECT: %v %v", resp, err)
	}
	return c
}

func rssKiB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// BenchmarkNet measures, in one run, the figures of DESIGN.md §11 for the
// network side: CONNECT relay throughput against direct loopback (daemon
// alone, and curl through the whole sandbox path), the latency the proxy
// adds per request, and the daemon's RSS idle and holding 1000 tunnels.
// Run it with scripts/bench-net.sh.
func BenchmarkNet(b *testing.B) {
	sinkPort, srcPort := sink(b), source(b)
	e := newEnv(b, fmt.Sprintf("[network]\nallowLocalOutbound = [%d, %d]\n", sinkPort, srcPort))

	// The daemon, started by hand so its pid is ours to measure.
	d := exec.Command(e.Fence, "daemon", "run")
	d.Env = e.Vars
	if testing.Verbose() {
		d.Stderr = os.Stderr
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Process.Kill(); d.Wait() })
	for i := 0; ; i++ {
		if _, err := control.Do(e.rt+"/fence", control.Request{Op: control.OpStatus}); err == nil {
			break
		}
		if i > 500 {
			b.Fatal("daemon did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	rssIdle := rssKiB(d.Process.Pid)

	lease, err := control.Dial(e.rt + "/fence")
	if err != nil {
		b.Fatal(err)
	}
	defer lease.Close()
	env := map[string]string{}
	for _, v := range e.Vars {
		k, val, _ := strings.Cut(v, "=")
		env[k] = val
	}
	resp, err := lease.Call(control.Request{Op: control.OpOpen, Spec: &control.Spec{Dir: e.Project, Settings: e.Config, Env: env}})
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(resp.Session.Dir, "http.sock")

	// Throughput: 512 MiB, best-of-3 medians, direct then relayed.
	const total = 512 << 20
	var direct, relayed []float64
	cpu0 := cpuTicks(d.Process.Pid)
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(sinkPort))
		if err != nil {
			b.Fatal(err)
		}
		direct = append(direct, pump(b, c, total))
		c.Close()
		c = connectVia(b, sock, sinkPort)
		relayed = append(relayed, pump(b, c, total))
		c.Close()
	}
	md, mr := median(direct), median(relayed)
	// Daemon CPU per relayed GiB (3 transfers of total bytes).
	cpuPerGiB := float64(cpuTicks(d.Process.Pid)-cpu0) / 100 / (3 * float64(total) / (1 << 30))

	// The whole path: curl in the sandbox, through the init's relay and
	// the daemon (CONNECT tunnel, -p), against curl outside.
	curlRate := func(r string) float64 {
		f := strings.Fields(r)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		return v / (1 << 20)
	}
	get := fmt.Sprintf("http://127.0.0.1:%d/%d", srcPort, 1<<30)
	var cOut, cIn []float64
	for i := 0; i < 3; i++ {
		cOut = append(cOut, curlRate(e.Direct(`curl -s -o /dev/null -w '%{speed_download}' `+get).Stdout))
		cIn = append(cIn, curlRate(e.Sh(`curl -s -p --noproxy '' -x http://127.0.0.1:3128 -o /dev/null -w '%{speed_download}' `+get).Stdout))
	}
	mco, mci := median(cOut), median(cIn)

	// Latency: sequential requests on fresh connections.
	const reqs = 300
	web := source(b)
	lat := func(dial func() (net.Conn, error)) time.Duration {
		t0 := time.Now()
		for i := 0; i < reqs; i++ {
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(c, "GET http://127.0.0.1:%d/16 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", web)
			io.Copy(io.Discard, c)
			c.Close()
		}
		return time.Since(t0) / reqs
	}
	// The web server needs its port allowed too: reopen with it.
	lease.Close()
	e.Write(".fence.toml", fmt.Sprintf("[network]\nallowLocalOutbound = [%d, %d, %d]\n", sinkPort, srcPort, web))
	lease, err = control.Dial(e.rt + "/fence")
	if err != nil {
		b.Fatal(err)
	}
	resp, err = lease.Call(control.Request{Op: control.OpOpen, Spec: &control.Spec{Dir: e.Project, Settings: e.Config, Env: env}})
	if err != nil {
		b.Fatal(err)
	}
	sock = filepath.Join(resp.Session.Dir, "http.sock")
	// The lease must stay reachable: a collected connection is closed, and
	// that ends the session.
	defer lease.Close()
	latDirect := lat(func() (net.Conn, error) { return net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(web)) })
	latProxy := lat(func() (net.Conn, error) { return net.Dial("unix", sock) })

	// RSS with 1000 tunnels held open.
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := connectVia(b, sock, sinkPort)
			c.Write([]byte("x"))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	rss1000 := rssKiB(d.Process.Pid)
	for _, c := range conns {
		c.Close()
	}

	fmt.Printf("\nfence network benchmarks (%s)\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("  CONNECT relay, daemon only:   %8.0f MiB/s vs direct loopback %8.0f MiB/s  ratio %.2f\n", mr, md, mr/md)
	fmt.Printf("  daemon CPU per relayed GiB:   %8.2f s\n", cpuPerGiB)
	fmt.Printf("  curl through the sandbox:     %8.0f MiB/s vs curl outside    %8.0f MiB/s  ratio %.2f\n", mci, mco, mci/mco)
	fmt.Printf("  request latency (new conn):   %8.0f us    vs direct          %8.0f us     added %.0f us\n",
		float64(latProxy.Microseconds()), float64(latDirect.Microseconds()), float64((latProxy - latDirect).Microseconds()))
	fmt.Printf("  daemon RSS idle:              %8.1f MiB\n", float64(rssIdle)/1024)
	fmt.Printf("  daemon RSS, 1000 tunnels:     %8.1f MiB\n", float64(rss1000)/1024)
	b.ReportMetric(mr/md, "relay/direct")
	b.ReportMetric(mci/mco, "sandbox/direct")
	b.ReportMetric(float64((latProxy - latDirect).Microseconds()), "added-us/req")
	b.ReportMetric(float64(rssIdle)/1024, "rss-idle-MiB")
	b.ReportMetric(float64(rss1000)/1024, "rss-1000-MiB")
}

// cpuTicks is the user+system time of pid in clock ticks (1/100 s).
func cpuTicks(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return u + st
}
