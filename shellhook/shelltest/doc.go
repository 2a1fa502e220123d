// Package shelltest drives real bash, zsh and fish under tmux through the
// fence shell hook: enter, leave, re-entry rules, sandbox enforcement, job
// control, window size and terminal attacks. It has tests only.
package shelltest
