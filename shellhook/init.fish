# fence: init for the sandboxed fish, run with --init-command after your own
# config.fish (generated for one session; do not edit).
set -g _fence_root @ROOT@
set -g _fence_lroot @LROOT@
set -g _fence_handoff @HANDOFF@
set -g _fence_notice @NOTICE@
set -g _fence_marker @MARKER@
set -g _fence_bin @FENCE@
set -gx FENCE_PROMPT @PROMPT@
set -g _fence_pwd $PWD
@FISHXDG@

# The outer hook's enter logic never runs inside a sandbox.
functions -e _fence_on_pwd _fence_on_prompt _fence_enter

# fish exits normally on SIGHUP: see TRAPHUP in zshrc.zsh.
function _fence_hup --on-signal SIGHUP
    history save
    command kill -KILL $fish_pid
end

function _fence_inner --on-event fish_prompt
    set -l _fence_st $status
    if test "$PWD" != "$_fence_pwd"
        # A link outside that leads inside is not leaving (see
        # init.bash): the shell moves to its real path.
        switch $PWD
            case "$_fence_root" "$_fence_root"/\* "$_fence_lroot" "$_fence_lroot"/\*
            case '*'
                builtin cd (path resolve -- $PWD) 2>/dev/null
        end
        switch $PWD
            case "$_fence_root" "$_fence_root"/\* "$_fence_lroot" "$_fence_lroot"/\*
                set -g _fence_pwd $PWD
            case '*'
                history save
                if test -z "$_fence_handoff"
                    # Linux: fence reads this shell's directory from the
                    # kernel once it stopped; nothing else inside can
                    # choose it.
                    command kill -STOP $fish_pid
                else
                    # exit in an event handler loses its status: exec
                    # instead.
                    printf '%s\n' $PWD >$_fence_handoff
                    and exec /bin/sh -c 'exit @EXITLEAVE@'
                end
        end
    end
    if test -s $_fence_notice
        read -l _fence_l <$_fence_notice
        if test "$_fence_l" != "$_fence_seen"
            set -g _fence_seen $_fence_l
            printf 'fence: %s\n' (string replace -r '^\S+ ' '' -- $_fence_l) >&2
        end
    end
    return $_fence_st
end

function _fence_status
    return $argv[1]
end

if test -n "$_fence_marker"
    if functions -q fish_prompt; and not functions -q _fence_user_prompt
        functions -c fish_prompt _fence_user_prompt
        function fish_prompt
            set -l _fence_st $status
            printf '%s' $_fence_marker
            _fence_status $_fence_st
            _fence_user_prompt
        end
    end
end

function fence
    if test (count $argv) -eq 1; and test "$argv[1]" = reload
        history save
        exec /bin/sh -c 'exit @EXITRELOAD@'
    end
    # The trust store is read-only in here: fence allows from outside.
    if test (count $argv) -eq 1; and test "$argv[1]" = allow
        history save
        exec /bin/sh -c 'exit @EXITALLOW@'
    end
    $_fence_bin $argv
end
