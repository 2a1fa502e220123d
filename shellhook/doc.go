// Package shellhook is fence's shell integration: the hook scripts that
// enter a sandbox when the shell arrives in a project and leave it when the
// shell goes elsewhere (bash, zsh, fish), the init files the sandboxed shell
// loads after the user's own rc files, and the terminal relay that connects
// the user's real terminal to the sandbox's PTY, filtering the escape
// sequences that would act on the host.
//
// The package never prints and never exits; the CLI (cmd/internal/cli)
// decides what the user sees.
package shellhook
