# fish completion for fence (fence completions fish)
set -l fence_cmds allow completions config daemon deny doctor help hook import init monitor reload shell status version
set -l fence_templates @TEMPLATES@

complete -c fence -f
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a allow -d 'trust the project config'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a completions -d 'print a completion script'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a config -d 'print the resolved policy'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a daemon -d 'manage the daemon'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a deny -d 'distrust the project config'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a doctor -d 'check the kernel and environment'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a help -d 'show help'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a hook -d 'print the shell hook'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a import -d 'import a policy file'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a init -d 'write a starter .fence.toml'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a monitor -d 'stream blocked events'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a reload -d 'restart the sandboxed shell'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a shell -d 'interactive sandboxed shell'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a status -d 'project, trust, daemon and sessions'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -a version -d 'print the version'

# Running-form flags (and shell's).
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds; or __fish_seen_subcommand_from shell" -s s -l settings -r -F -d 'use FILE as the project layer'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds; or __fish_seen_subcommand_from shell" -s t -l template -x -a "$fence_templates" -d 'add a built-in template'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds; or __fish_seen_subcommand_from shell" -s p -l port -x -d 'publish sandbox port'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds; or __fish_seen_subcommand_from shell" -s m -l monitor -d 'print blocked events'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds; or __fish_seen_subcommand_from shell" -s d -l debug -d 'explain decisions'
complete -c fence -n "not __fish_seen_subcommand_from $fence_cmds" -s c -x -d 'run STRING with /bin/sh -c'
complete -c fence -n "__fish_seen_subcommand_from shell" -l nested -d 'allow a session inside a session'

complete -c fence -n "__fish_seen_subcommand_from hook completions" -x -a "bash zsh fish"
complete -c fence -n "__fish_seen_subcommand_from daemon" -x -a "start stop status"
complete -c fence -n "__fish_seen_subcommand_from config" -x -a "show"
complete -c fence -n "__fish_seen_subcommand_from config status" -l json -d 'print JSON'
complete -c fence -n "__fish_seen_subcommand_from init" -l template -x -a "$fence_templates" -d 'template'
complete -c fence -n "__fish_seen_subcommand_from init" -l list -d 'list templates'
complete -c fence -n "__fish_seen_subcommand_from shell status allow deny monitor config" -a "(__fish_complete_directories)"
complete -c fence -n "__fish_seen_subcommand_from import" -F
complete -c fence -n "__fish_seen_subcommand_from help" -x -a "$fence_cmds"
