# fence shell hook for bash: eval "$(fence hook bash)" in ~/.bashrc, last.
# Per prompt it compares $PWD with the last one seen and returns: no process
# is started unless $PWD changed and a .fence.toml (or an autoEnter pattern)
# is found walking up, using only shell string operations and [[ -f ]].
_fence_bin=@FENCE@
_fence_auto=(@AUTOENTER@)
_fence_res=${XDG_STATE_HOME:-$HOME/.local/state}/fence/hook/bash.$$

_fence_hook() {
	local _fence_st=$?
	if [[ $PWD != "${_fence_pwd-}" ]]; then
		_fence_pwd=$PWD
		_fence_enter
	fi
	return $_fence_st
}

# _fence_enter runs a sandboxed shell when $PWD is in a project, and follows
# it: to the directory it handed back (possibly another project), or, after
# exit or a failure, stays here without re-entering until $PWD leaves.
_fence_enter() {
	[[ ${FENCE_HOOK-} != off && -z ${VSCODE_RESOLVING_ENVIRONMENT-} && -z ${INTELLIJ_ENVIRONMENT_READER-} ]] || return 0
	[[ $- == *i* && -t 0 && -t 1 ]] || return 0
	local _fence_n=0 _fence_d _fence_root _fence_p _fence_to
	while ((_fence_n++ < 16)); do
		if [[ -n ${_fence_suppress-} ]]; then
			[[ $PWD == "$_fence_suppress" || $PWD == "$_fence_suppress"/* ]] && return 0
			_fence_suppress=
		fi
		_fence_root='' _fence_d=$PWD
		while :; do
			if [[ -f $_fence_d/.fence.toml ]]; then
				_fence_root=${_fence_d:-/}
				break
			fi
			for _fence_p in "${_fence_auto[@]}"; do
				# shellcheck disable=SC2053 # the pattern is a glob on purpose
				if [[ -n $_fence_d && $_fence_d == $_fence_p ]]; then
					_fence_root=$_fence_d
					break 2
				fi
			done
			[[ -n $_fence_d ]] || break
			_fence_d=${_fence_d%/*}
		done
		[[ -n $_fence_root ]] || return 0
		{ : >"$_fence_res"; } 2>/dev/null
		"$_fence_bin" shell --hook-result="$_fence_res"
		_fence_st=$?
		_fence_to=
		[[ -s $_fence_res ]] && IFS= read -r _fence_to <"$_fence_res"
		if [[ $_fence_to == /* && -d $_fence_to ]] && builtin cd -- "$_fence_to"; then
			_fence_pwd=$PWD
			continue
		fi
		_fence_suppress=$_fence_root
		return 0
	done
}

if [[ " ${PROMPT_COMMAND[*]-} " != *[\ \;]_fence_hook[\ \;]* ]]; then
	if [[ -n ${PROMPT_COMMAND+set} && ${PROMPT_COMMAND@a} == *a* ]]; then
		PROMPT_COMMAND=(_fence_hook "${PROMPT_COMMAND[@]}")
	else
		# shellcheck disable=SC2128,SC2178 # the string form
		PROMPT_COMMAND="_fence_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
	fi
fi
