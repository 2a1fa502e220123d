#!/bin/sh
# install.sh builds fence from this checkout with the local Go toolchain and
# installs it to $PREFIX/bin (default ~/.local/bin). It downloads nothing but
# the Go modules go.sum pins, and prints the line to add to your shell's rc.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
prefix=${PREFIX:-"$HOME/.local"}
bindir="$prefix/bin"

if ! command -v go >/dev/null 2>&1; then
	echo "install.sh: go not found; install Go 1.26 or newer (https://go.dev/dl) and retry" >&2
	exit 1
fi

mkdir -p "$bindir"
# Build to a temporary name and rename, so a running fence is never half-written.
tmp="$bindir/.fence.$$"
trap 'rm -f "$tmp" "$tmp.build"' EXIT
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$tmp.build" ./cmd/fence)
# Installed as a copy: a file written by the linker sits in the page cache
# in smaller pieces than one written with write(2), and every fence process
# then starts and exits measurably slower (docs/benchmarks.md).
cp "$tmp.build" "$tmp"
rm -f "$tmp.build"
chmod 0755 "$tmp"
mv -f "$tmp" "$bindir/fence"
trap - EXIT
echo "installed $bindir/fence ($("$bindir/fence" version))"

# Completions, where the shell's user directories are conventional.
if [ -d "$HOME/.config/fish" ] || command -v fish >/dev/null 2>&1; then
	mkdir -p "$HOME/.config/fish/completions"
	"$bindir/fence" completions fish >"$HOME/.config/fish/completions/fence.fish" 2>/dev/null || true
fi
mkdir -p "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions"
"$bindir/fence" completions bash >"$prefix/share/bash-completion/completions/fence" 2>/dev/null || true
"$bindir/fence" completions zsh >"$prefix/share/zsh/site-functions/_fence" 2>/dev/null || true

case ":$PATH:" in
*":$bindir:"*) ;;
*) echo "note: $bindir is not on your PATH; add it, e.g. export PATH=\"$bindir:\$PATH\"" ;;
esac

shell_name=$(basename -- "${SHELL:-sh}")
case "$shell_name" in
bash) echo "to enter sandboxes on cd, add to ~/.bashrc:  eval \"\$($bindir/fence hook bash)\"" ;;
zsh) echo "to enter sandboxes on cd, add to ~/.zshrc:  eval \"\$($bindir/fence hook zsh)\"" ;;
fish) echo "to enter sandboxes on cd, add to ~/.config/fish/config.fish:  $bindir/fence hook fish | source" ;;
*) echo "to enter sandboxes on cd, add the output of '$bindir/fence hook bash|zsh|fish' to your shell's rc file" ;;
esac
