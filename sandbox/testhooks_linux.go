//go:build fence_testhooks

package sandbox

import (
	"os"
	"path/filepath"
	"time"
)

// Test builds only (go build -tags fence_testhooks, as cmd/fence's tests
// and sandboxtest.FenceWithTestHooks do):
//   - FENCE_TEST_LOSE_WARM_INIT=1 kills each warm init as it is taken;
//   - FENCE_TEST_PAUSE_BEFORE_MOUNTS=DIR stops the client after the plan
//     is made and before the init mounts it: it creates DIR/paused and
//     waits for DIR/go, so that a test can change the host's tree in
//     between (ATTACKS.md F-21);
//   - FENCE_TEST_PAUSE_BEFORE_WATCH=DIR does the same after the init has
//     the plan (and may run the command) and before the client watches
//     for protected paths.
func init() {
	loseAdopted = os.Getenv("FENCE_TEST_LOSE_WARM_INIT") == "1"
	if dir := os.Getenv("FENCE_TEST_PAUSE_BEFORE_MOUNTS"); dir != "" {
		beforeConfigSent = func() { pauseAt(dir) }
	}
	if dir := os.Getenv("FENCE_TEST_PAUSE_BEFORE_WATCH"); dir != "" {
		beforeWatch = func() { pauseAt(dir) }
	}
}

func pauseAt(dir string) {
	if err := os.WriteFile(filepath.Join(dir, "paused"), nil, 0o644); err != nil {
		panic(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			return
		}
	}
	panic("FENCE_TEST_PAUSE_BEFORE_MOUNTS: no " + filepath.Join(dir, "go") + " after a minute")
}
