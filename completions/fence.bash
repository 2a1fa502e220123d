# bash completion for fence (fence completions bash)
_fence() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
	fi
	local cmds="allow completions config daemon deny doctor help hook import init monitor reload shell status version"
	local runflags="-s --settings -t --template -p --port -m --monitor -d --debug -c --"
	local templates="@TEMPLATES@"
	local shells="bash zsh fish"

	case $prev in
	-t | --template) mapfile -t COMPREPLY < <(compgen -W "$templates" -- "$cur"); return ;;
	-s | --settings) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	-p | --port) return ;;
	esac

	# The first word that is not a flag (or --) decides.
	local i cmd=
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--) # everything after -- is a command: complete commands and files
			mapfile -t COMPREPLY < <(compgen -c -- "$cur")
			return ;;
		-s | --settings | -t | --template | -p | --port) ((i++)) ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done
	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$runflags -h --help" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
		fi
		return
	fi
	case $cmd in
	hook | completions) mapfile -t COMPREPLY < <(compgen -W "$shells" -- "$cur") ;;
	daemon) mapfile -t COMPREPLY < <(compgen -W "start stop status" -- "$cur") ;;
	config)
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--json" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "show" -- "$cur")
			[[ ${words[cword-1]} == show ]] && mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		fi ;;
	init) mapfile -t COMPREPLY < <(compgen -W "--template --list" -- "$cur") ;;
	status) if [[ $cur == -* ]]; then mapfile -t COMPREPLY < <(compgen -W "--json" -- "$cur"); else mapfile -t COMPREPLY < <(compgen -d -- "$cur"); fi ;;
	shell) if [[ $cur == -* ]]; then mapfile -t COMPREPLY < <(compgen -W "--nested -s --settings -t --template -p --port -m --monitor -d --debug" -- "$cur"); else mapfile -t COMPREPLY < <(compgen -d -- "$cur"); fi ;;
	allow | deny | monitor) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
	import) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
	help) mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur") ;;
	esac
}
complete -F _fence fence
