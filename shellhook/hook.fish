# fence shell hook for fish: fence hook fish | source  (in config.fish).
# A PWD change only sets a flag; the fish_prompt handler does the work. No
# process is started unless $PWD changed and a .fence.toml (or an autoEnter
# pattern) is found walking up, using only builtins (test, string, set).
set -g _fence_bin @FENCE@
set -g _fence_auto @AUTOENTER@
if set -q XDG_STATE_HOME[1]; and test -n "$XDG_STATE_HOME"
    set -g _fence_resdir $XDG_STATE_HOME/fence/hook
else
    set -g _fence_resdir $HOME/.local/state/fence/hook
end
set -g _fence_res $_fence_resdir/fish.$fish_pid
set -g _fence_dirty 1

function _fence_on_pwd --on-variable PWD
    set -g _fence_dirty 1
end

function _fence_on_prompt --on-event fish_prompt
    set -l _fence_st $status
    if test -n "$_fence_dirty"
        set -g _fence_dirty
        _fence_enter
    end
    return $_fence_st
end

function _fence_enter
    test "$FENCE_HOOK" != off; and test -z "$VSCODE_RESOLVING_ENVIRONMENT"; and test -z "$INTELLIJ_ENVIRONMENT_READER"; or return 0
    status is-interactive; and test -t 0; and test -t 1; or return 0
    for _fence_n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
        if test -n "$_fence_suppress"
            switch $PWD
                case "$_fence_suppress" "$_fence_suppress"/\*
                    return 0
            end
            set -g _fence_suppress
        end
        # Walk down from / to $PWD, keeping the deepest match: one command
        # substitution in all (they cost more in fish than the tests).
        set -l _fence_root
        test -f /.fence.toml; and set _fence_root /
        set -l _fence_acc ""
        for _fence_p in (string split / -- $PWD)[2..-1]
            set _fence_acc "$_fence_acc/$_fence_p"
            test -f "$_fence_acc/.fence.toml"; and set _fence_root $_fence_acc
            if set -q _fence_auto[1]
                for _fence_q in $_fence_auto
                    string match -q -- $_fence_q $_fence_acc; and set _fence_root $_fence_acc
                end
            end
        end
        test -n "$_fence_root"; or return 0
        test -d $_fence_resdir; and true >$_fence_res
        $_fence_bin shell --hook-result=$_fence_res
        set -l _fence_to
        test -s $_fence_res; and read _fence_to <$_fence_res
        if string match -q -- '/*' "$_fence_to"; and test -d "$_fence_to"; and builtin cd -- $_fence_to
            set -g _fence_dirty
            continue
        end
        set -g _fence_suppress $_fence_root
        return 0
    end
end
