//go:build fence_testhooks

package sandbox

import "os"

// Test builds only (go build -tags fence_testhooks, as cmd/fence's tests
// do): FENCE_TEST_LOSE_WARM_INIT=1 kills each warm init as it is taken.
func init() {
	loseAdopted = os.Getenv("FENCE_TEST_LOSE_WARM_INIT") == "1"
}
