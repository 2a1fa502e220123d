# fence: init for the sandboxed zsh, after your own .zshrc (generated for
# one session; do not edit).
if [[ -n $_fence_user_zdotdir ]]; then ZDOTDIR=$_fence_user_zdotdir; else unset ZDOTDIR; fi
if [[ -f ${ZDOTDIR:-$HOME}/.zshrc ]]; then
	source ${ZDOTDIR:-$HOME}/.zshrc
fi
typeset -g _fence_root=@ROOT@
typeset -g _fence_lroot=@LROOT@
typeset -g _fence_handoff=@HANDOFF@
typeset -g _fence_notice=@NOTICE@
typeset -g _fence_marker=@MARKER@
typeset -g _fence_bin=@FENCE@
export FENCE_PROMPT=@PROMPT@
HISTFILE=@HISTFILE@
# zsh saves no history unless SAVEHIST is set; keep the user's if it is.
(( ${SAVEHIST:-0} > 0 )) || SAVEHIST=${HISTSIZE:-10000}
(( ${HISTSIZE:-0} >= SAVEHIST )) || HISTSIZE=$SAVEHIST
typeset -g _fence_pwd=$PWD

# The outer hook's enter logic never runs inside a sandbox.
_fence_hook() { return $? }
_fence_chpwd() { }

# zsh exits normally on SIGHUP, which fence could not tell from the user's
# exit: a program inside could send it and leave the user in their outer,
# unsandboxed shell without a word. Dying of SIGKILL instead (the history
# saved first), the shell's end is seen as not the user's, and a new
# sandboxed shell starts; fence's own hangup (the terminal closed) is
# known as such and ends the session.
TRAPHUP() {
	fc -AI 2>/dev/null
	builtin kill -KILL $$
}

_fence_inner() {
	local _fence_st=$? _fence_l
	if [[ $PWD != "$_fence_pwd" ]]; then
		if [[ $PWD != "$_fence_root" && $PWD != "$_fence_root"/* && $PWD != "$_fence_lroot" && $PWD != "$_fence_lroot"/* ]]; then
			# A link outside that leads inside is not leaving (see
			# init.bash): the shell moves to its real path.
			builtin cd -q -P . 2>/dev/null
		fi
		if [[ $PWD != "$_fence_root" && $PWD != "$_fence_root"/* && $PWD != "$_fence_lroot" && $PWD != "$_fence_lroot"/* ]]; then
			if [[ -z $_fence_handoff ]]; then
				# Linux: fence reads this shell's directory from the
				# kernel once it stopped; nothing else inside can choose it.
				fc -AI
				builtin kill -STOP $$
			else
				print -r -- "$PWD" >"$_fence_handoff" && builtin exit @EXITLEAVE@
			fi
		fi
		_fence_pwd=$PWD
	fi
	if [[ -s $_fence_notice ]]; then
		IFS= read -r _fence_l <"$_fence_notice"
		if [[ $_fence_l != "${_fence_seen-}" ]]; then
			typeset -g _fence_seen=$_fence_l
			print -r -- "fence: ${_fence_l#* }" >&2
		fi
	fi
	if [[ -n $_fence_marker && $PS1 != "$_fence_marker"* ]]; then
		PS1=$_fence_marker$PS1
	fi
	return $_fence_st
}

fence() {
	if [[ ${1-} == reload && $# == 1 ]]; then
		builtin exit @EXITRELOAD@
	fi
	# The trust store is read-only in here: fence allows from outside.
	if [[ ${1-} == allow && $# == 1 ]]; then
		builtin exit @EXITALLOW@
	fi
	"$_fence_bin" "$@"
}

autoload -Uz add-zsh-hook
add-zsh-hook precmd _fence_inner
