package sandbox

import (
	"path/filepath"
	"sort"
	"strings"
)

// Relay ports inside the sandbox (DESIGN.md §7).
const (
	HTTPProxyPort  = 3128
	SOCKSProxyPort = 1080
)

// strippedEnv are variables that point at host control channels or change
// how programs load code; they never reach the sandbox unless the policy's
// EnvPass names them (DESIGN.md §6.5).
var strippedEnv = []string{
	"SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SUDO_ASKPASS", "GIT_ASKPASS",
	"DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS",
	"DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "XDG_SESSION_COOKIE",
	"TMUX", "TMUX_PANE", "STY", "KITTY_LISTEN_ON", "KITTY_WINDOW_ID", "KITTY_PID",
	"WEZTERM_UNIX_SOCKET", "ALACRITTY_SOCKET", "ZELLIJ", "ZELLIJ_SESSION_NAME",
	"NVIM", "NVIM_LISTEN_ADDRESS", "VIM_SERVERNAME",
	"VSCODE_IPC_HOOK", "VSCODE_IPC_HOOK_CLI", "VSCODE_GIT_IPC_HANDLE", "VSCODE_GIT_ASKPASS_NODE",
	"VSCODE_GIT_ASKPASS_MAIN", "VSCODE_GIT_ASKPASS_EXTRA_ARGS", "JETBRAINS_IDE_ASKPASS",
	"GPG_AGENT_INFO", "GNOME_KEYRING_CONTROL", "GNOME_KEYRING_PID",
	"PULSE_SERVER", "PULSE_COOKIE", "PIPEWIRE_REMOTE",
	"DOCKER_HOST", "CONTAINER_HOST", "PODMAN_HOST",
	"XDG_RUNTIME_DIR", "SESSION_MANAGER",
	"GCONV_PATH", "GLIBC_TUNABLES", "MALLOC_CHECK_", "MALLOC_PERTURB_",
	"TMPDIR",
	"FENCE_SESSION",
	// Set by fence below; a caller's value must not survive.
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
	"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
	"GIT_SSH_COMMAND", "GIT_SSH", "GIT_PROXY_COMMAND", "NODE_USE_ENV_PROXY", "JAVA_TOOL_OPTIONS",
}

// strippedPrefixes strip every variable starting with them.
var strippedPrefixes = []string{"LD_", "DYLD_"}

// EnvOptions say what [SandboxEnv] adds to the environment.
type EnvOptions struct {
	// Pass names variables let through although they are stripped by
	// default (Policy.EnvPass). Loader variables (LD_*, DYLD_*) are never
	// passed.
	Pass []string
	// TMPDIR is the sandbox's temporary directory.
	TMPDIR string
	// Session is exported as FENCE_SESSION when not empty.
	Session string
	// Fence is the absolute path of the fence binary, used for ssh's
	// ProxyCommand; empty leaves GIT_SSH_COMMAND unset.
	Fence string
}

// SandboxEnv returns the environment of a sandboxed command: env without the
// loader variables and host control channels, plus the proxy variables that
// point at the in-sandbox relay, TMPDIR and FENCE_SESSION (DESIGN.md §6.5).
// The result is sorted.
func SandboxEnv(env []string, opts EnvOptions) []string {
	pass := make(map[string]bool, len(opts.Pass))
	for _, p := range opts.Pass {
		pass[p] = true
	}
	strip := make(map[string]bool, len(strippedEnv))
	for _, s := range strippedEnv {
		strip[s] = true
	}
	vars := make(map[string]string, len(env)+16)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		loader := false
		for _, p := range strippedPrefixes {
			if strings.HasPrefix(k, p) {
				loader = true
			}
		}
		if loader || (strip[k] && !pass[k]) {
			continue
		}
		vars[k] = v
	}
	httpProxy := "http://127.0.0.1:3128"
	socksProxy := "socks5h://127.0.0.1:1080"
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		vars[k] = httpProxy
	}
	vars["ALL_PROXY"], vars["all_proxy"] = socksProxy, socksProxy
	vars["NO_PROXY"], vars["no_proxy"] = "localhost,127.0.0.1,::1", "localhost,127.0.0.1,::1"
	vars["NODE_USE_ENV_PROXY"] = "1"
	java := "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1"
	vars["JAVA_TOOL_OPTIONS"] = java
	if opts.Fence != "" && filepath.IsAbs(opts.Fence) {
		vars["GIT_SSH_COMMAND"] = "ssh -o ProxyCommand='" + shellQuoteSingle(opts.Fence) + " proxy-connect %h %p'"
	}
	if opts.TMPDIR != "" {
		vars["TMPDIR"] = opts.TMPDIR
	}
	if opts.Session != "" {
		vars["FENCE_SESSION"] = opts.Session
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// shellQuoteSingle escapes s for use inside single quotes.
func shellQuoteSingle(s string) string {
	return strings.ReplaceAll(s, `'`, `'\''`)
}

// lookupEnv returns the value of key in env.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
