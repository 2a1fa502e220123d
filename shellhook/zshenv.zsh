# fence: the sandboxed zsh starts with ZDOTDIR pointing here; this file
# loads your own .zshenv and then leaves ZDOTDIR here for .zshrc (generated
# for one session; do not edit).
typeset -g _fence_zdotdir=$ZDOTDIR
typeset -g _fence_user_zdotdir=@USERZDOTDIR@
ZDOTDIR=${_fence_user_zdotdir:-$HOME}
# A ZDOTDIR the sandbox cannot see (an editor's temporary one under /tmp)
# falls back to HOME.
[[ -d $ZDOTDIR ]] || ZDOTDIR=$HOME _fence_user_zdotdir=
if [[ -f $ZDOTDIR/.zshenv ]]; then
	source $ZDOTDIR/.zshenv
fi
# Your .zshenv may set ZDOTDIR; .zshrc then comes from there.
[[ $ZDOTDIR == ${_fence_user_zdotdir:-$HOME} ]] || _fence_user_zdotdir=$ZDOTDIR
ZDOTDIR=$_fence_zdotdir
