package sandbox_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// Workloads that must keep working inside the sandbox (issue 3).

func TestWorkloadGit(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	gitInit(t, e)
	r := e.Sh(`git status --short && git add README && git commit -qm first && git log --oneline | wc -l && git status --short`)
	if r.Code != 0 || !strings.Contains(r.Stdout, "1\n") {
		t.Fatalf("git status/commit inside the sandbox: status %d\n%s", r.Code, r.Out())
	}
}

func TestWorkloadMakeTar(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	e.Write("Makefile", "all: out.txt\nout.txt: in.txt\n\tcp in.txt out.txt\n")
	e.Write("in.txt", "data\n")
	r := e.Sh(`make -s && tar czf a.tgz in.txt out.txt && mkdir x && tar xzf a.tgz -C x && cat x/out.txt`)
	if r.Code != 0 || r.Stdout != "data\n" {
		t.Fatalf("make/tar inside the sandbox: status %d\n%s", r.Code, r.Out())
	}
}

func TestWorkloadJobControl(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	r := e.Run("--", "bash", "-c", `set -m; sleep 0.2 & jobs | grep -c sleep; wait %1; echo waited; (exit 3) & wait $!; echo $?`)
	if r.Code != 0 || r.Stdout != "1\nwaited\n3\n" {
		t.Fatalf("job control in bash -c: status %d\n%s", r.Code, r.Out())
	}
}

func TestWorkloadPythonVenv(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		sandboxtest.Require(t, false, "python3 not installed")
	}
	e := sandboxtest.New(t, writeDot)
	if r := e.Direct(`python3 -m venv --without-pip ` + e.Base + `/probe`); r.Code != 0 {
		sandboxtest.Require(t, false, "python3 -m venv does not work on this machine: "+r.Out())
	}
	r := e.Sh(`python3 -m venv --without-pip venv && venv/bin/python -c 'import sys; print(sys.prefix)'`)
	if r.Code != 0 || !strings.Contains(r.Stdout, "/proj/venv") {
		t.Fatalf("python3 -m venv inside the sandbox: status %d\n%s", r.Code, r.Out())
	}
}

func TestWorkloadGoBuild(t *testing.T) {
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		sandboxtest.Require(t, false, "go not on PATH")
	}
	cache := strings.TrimSpace(string(gocache))
	os.MkdirAll(cache, 0o755)
	e := sandboxtest.New(t, fmt.Sprintf("[filesystem]\nallowWrite = [%q, %q]\n", ".", cache))
	e.Vars = append(e.Vars, "GOCACHE="+cache, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOPROXY=off")
	e.Write("go.mod", "module example.com/hello\n\ngo 1.21\n")
	e.Write("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from go\") }\n")
	r := e.Sh(`go build -o hello . && ./hello`)
	if r.Code != 0 || r.Stdout != "hello from go\n" {
		t.Fatalf("go build inside the sandbox: status %d\n%s", r.Code, r.Out())
	}
}

func TestWorkloadNpm(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed (optional workload)")
	}
	e := sandboxtest.New(t, writeDot)
	if r := e.Sh(`npm --version`); r.Code != 0 {
		t.Fatalf("npm --version: %s", r.Out())
	}
}
