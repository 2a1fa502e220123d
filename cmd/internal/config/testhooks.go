//go:build fence_testhooks

package config

import "os"

// Test builds only (go build -tags fence_testhooks, as cmd/fence's tests
// do): read the system policy from $FENCE_TEST_SYSTEM_POLICY so that CLI
// tests never depend on the host's /etc/fence. Release builds have no such
// switch: a user's variable must not be able to drop the administrator's
// denies.
func init() {
	if p := os.Getenv("FENCE_TEST_SYSTEM_POLICY"); p != "" {
		SystemPolicyFile = p
	}
}
