# fence: init for the sandboxed bash, loaded with --rcfile after your own
# ~/.bashrc (generated for one session; do not edit).
if [[ -f ~/.bashrc ]]; then
	# shellcheck disable=SC1090
	. ~/.bashrc
fi
_fence_root=@ROOT@
_fence_lroot=@LROOT@
_fence_handoff=@HANDOFF@
_fence_notice=@NOTICE@
_fence_marker=@MARKER@
_fence_bin=@FENCE@
export FENCE_PROMPT=@PROMPT@
HISTFILE=@HISTFILE@
_fence_pwd=$PWD

# The outer hook's enter logic never runs inside a sandbox.
_fence_hook() { return $?; }

# _fence_inner runs last at every prompt: it hands a directory outside the
# project back to the outer shell (which cds there) and exits, shows policy
# notices written by the fence client, and keeps the prompt marker.
_fence_inner() {
	local _fence_st=$? _fence_l
	if [[ $PWD != "$_fence_pwd" ]]; then
		if [[ $PWD != "$_fence_root" && $PWD != "$_fence_root"/* && $PWD != "$_fence_lroot" && $PWD != "$_fence_lroot"/* ]]; then
			# A link outside that leads inside (cd ~/alias, alias ->
			# project/sub) is not leaving: the directory is the
			# project's, and fence would take the stop for something
			# inside stopping the shell. The shell moves to its real path.
			builtin cd -P . 2>/dev/null || :
		fi
		if [[ $PWD != "$_fence_root" && $PWD != "$_fence_root"/* && $PWD != "$_fence_lroot" && $PWD != "$_fence_lroot"/* ]]; then
			if [[ -z $_fence_handoff ]]; then
				# Linux: fence reads this shell's directory from the
				# kernel once it stopped; nothing else inside can choose it.
				history -a
				builtin kill -STOP $$
			else
				printf '%s\n' "$PWD" >"$_fence_handoff" && builtin exit @EXITLEAVE@
			fi
		fi
		_fence_pwd=$PWD
	fi
	if [[ -s $_fence_notice ]]; then
		IFS= read -r _fence_l <"$_fence_notice"
		if [[ $_fence_l != "${_fence_seen-}" ]]; then
			_fence_seen=$_fence_l
			printf 'fence: %s\n' "${_fence_l#* }" >&2
		fi
	fi
	if [[ -n $_fence_marker && $PS1 != "$_fence_marker"* ]]; then
		PS1=$_fence_marker$PS1
	fi
	return $_fence_st
}

# fence reload: restart this shell in place with the current policy.
# fence allow: trust this project (asked outside the sandbox), then restart.
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

if [[ " ${PROMPT_COMMAND[*]-} " != *[\ \;]_fence_inner[\ \;]* ]]; then
	if [[ -n ${PROMPT_COMMAND+set} && ${PROMPT_COMMAND@a} == *a* ]]; then
		PROMPT_COMMAND+=(_fence_inner)
	else
		# shellcheck disable=SC2128,SC2178 # the string form
		PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND;}_fence_inner"
	fi
fi
