// Package config turns fence's TOML layers (built-in defaults, system policy,
// user config, project .fence.toml and what it extends) into one validated,
// resolved policy, and keeps the trust store that decides whether a project's
// own config may loosen anything. It is the only package that knows TOML; it
// hands plain structs ([sandbox.Policy], [proxy.Rules]) to the libraries.
package config

import (
	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/sandbox"
)

// Options say which policy to resolve.
type Options struct {
	// Dir is the directory whose project applies; the project root is the
	// nearest ancestor (or Dir itself) holding .fence.toml.
	Dir string
	// Settings, when set, is used as the project layer instead of the
	// discovered .fence.toml, trusted because the user named it (-s FILE).
	Settings string
	// Templates are built-in templates added on top (-t NAME).
	Templates []string
}

// Resolved is the fully resolved policy for one session.
type Resolved struct {
	Root    string         // project root, "" when no project config applies
	Sandbox sandbox.Policy // filesystem and process rules
	Network proxy.Rules    // network rules for the proxy daemon
}

// Load resolves the policy for opts.
func Load(opts Options) (*Resolved, error) {
	panic("config.Load: not written yet")
}
