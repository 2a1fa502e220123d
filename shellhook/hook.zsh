# fence shell hook for zsh: eval "$(fence hook zsh)" in ~/.zshrc.
# chpwd only marks that the directory changed; precmd does the work, so a
# function that changes directory and back does not enter a sandbox. No
# process is started unless $PWD changed and a .fence.toml (or an autoEnter
# pattern) is found walking up, using only parameter expansion and [[ -f ]].
typeset -g _fence_bin=@FENCE@
typeset -ga _fence_auto=(@AUTOENTER@)
typeset -g _fence_res=${XDG_STATE_HOME:-$HOME/.local/state}/fence/hook/zsh.$$

_fence_chpwd() { _fence_dirty=1 }

_fence_hook() {
	local _fence_st=$?
	if [[ -n ${_fence_dirty-} || $PWD != "${_fence_pwd-}" ]]; then
		_fence_dirty=
		_fence_pwd=$PWD
		_fence_enter
	fi
	return $_fence_st
}

_fence_enter() {
	[[ ${FENCE_HOOK-} != off && -z ${VSCODE_RESOLVING_ENVIRONMENT-} && -z ${INTELLIJ_ENVIRONMENT_READER-} ]] || return 0
	[[ -o interactive && -t 0 && -t 1 ]] || return 0
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
				if [[ -n $_fence_d && $_fence_d == ${~_fence_p} ]]; then
					_fence_root=$_fence_d
					break 2
				fi
			done
			[[ -n $_fence_d ]] || break
			_fence_d=${_fence_d%/*}
		done
		[[ -n $_fence_root ]] || return 0
		{ : >"$_fence_res" } 2>/dev/null
		"$_fence_bin" shell --hook-result="$_fence_res"
		_fence_st=$?
		_fence_to=
		[[ -s $_fence_res ]] && IFS= read -r _fence_to <"$_fence_res"
		if [[ $_fence_to == /* && -d $_fence_to ]] && builtin cd -q -- "$_fence_to"; then
			_fence_pwd=$PWD
			_fence_dirty=
			continue
		fi
		_fence_suppress=$_fence_root
		return 0
	done
}

autoload -Uz add-zsh-hook
add-zsh-hook chpwd _fence_chpwd
add-zsh-hook precmd _fence_hook
