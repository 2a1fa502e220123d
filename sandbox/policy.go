// Package sandbox runs a command confined by a [Policy]: a read-only view of
// the host with chosen paths writable, secrets masked, fence's own files and
// the always-protected paths out of reach, only loopback networking, and a
// reduced kernel surface. The Policy is plain data; how it is enforced is per
// operating system (namespaces, Landlock and seccomp on Linux; sandbox-exec on
// macOS).
package sandbox

// Policy is the fully resolved filesystem and process policy of one sandbox.
// Every path is absolute and was resolved through symlinks once, when the
// policy was built. Network rules are not here: the proxy daemon owns them.
type Policy struct {
	// Root is the project root (the directory holding .fence.toml), or the
	// working directory when there is no project config.
	Root string

	// AllowWrite lists files and directories the command may write.
	AllowWrite []string
	// DenyWrite lists paths that stay read-only even under AllowWrite.
	DenyWrite []string
	// DenyRead lists paths that are masked: empty directory or empty file.
	DenyRead []string

	// AllowGitConfig leaves .git/config writable in writable repositories.
	AllowGitConfig bool
	// AllowLocalBinding lets sandboxed programs bind (listen on) sockets.
	AllowLocalBinding bool
	// LocalOutbound lists host loopback ports the sandbox may reach; they are
	// relayed from the sandbox's 127.0.0.1:PORT to the host's.
	LocalOutbound []int
	// Publish lists sandbox ports exposed on the host's 127.0.0.1.
	Publish []int

	// EnvPass names variables let through although fence strips them by
	// default (host control channels such as SSH_AUTH_SOCK).
	EnvPass []string

	// ConfigFiles are fence's own configuration files for this session: the
	// project config chain, the user config, the system policy. They are
	// always protected, as are the trust store and the runtime directory.
	ConfigFiles []string
	// StateDirs are fence's own directories (trust store, runtime dir, state
	// dir) that the sandbox must never write.
	StateDirs []string
	// ShellDir is `fence shell`'s directory of session files and per-project
	// histories. It stays readable (the inner shell reads its init files
	// there) but is protected like fence's own files: the host writes it,
	// so nothing inside may plant links or files in it.
	ShellDir string
	// ShellWrite lists the paths inside ShellDir that this session writes
	// all the same: a `fence shell` session's own history directory and
	// handoff file. Other projects' histories and the session files stay
	// read-only. Paths outside ShellDir are ignored.
	ShellWrite []string

	// AllowDegraded names protection layers the user accepted to run
	// without when the kernel lacks them (for example "landlock").
	AllowDegraded []string
}
