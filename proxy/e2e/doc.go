// Package e2e holds the network side's end-to-end tests: the real fence
// binary, the real sandbox, the real daemon, driven as an unprivileged user
// (as-fenceci go test ./proxy/e2e). It has no code of its own.
package e2e
