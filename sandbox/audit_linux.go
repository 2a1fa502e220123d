package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// auditNewRepos reports git repositories that appeared under the writable
// roots during the session (ATTACKS.md F-10): a new repository can carry
// hooks or a core.fsmonitor that would run on the host the next time the
// user, or their prompt, runs git there. No name list can protect an
// arbitrary path in advance, so fence tells the user instead. The walk is
// bounded (depth 4, 50 ms, dependency trees skipped) so the exit stays fast.
func auditNewRepos(roots []string, since time.Time, report func(string)) {
	deadline := time.Now().Add(50 * time.Millisecond)
	skip := map[string]bool{"node_modules": true, "vendor": true, ".cache": true, "target": true, ".venv": true, "venv": true}
	for _, root := range roots {
		fi, err := os.Stat(root)
		if err != nil || !fi.IsDir() {
			continue
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || time.Now().After(deadline) {
				return filepath.SkipDir
			}
			rel, _ := filepath.Rel(root, p)
			depth := strings.Count(rel, string(filepath.Separator))
			if d.Name() == ".git" && p != filepath.Join(root, ".git") {
				// Birth time, not ctime: git touches .git's ctime on
				// every commit of an existing repository.
				var stx unix.Statx_t
				if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &stx); err == nil && stx.Mask&unix.STATX_BTIME != 0 {
					if !time.Unix(stx.Btime.Sec, int64(stx.Btime.Nsec)).Before(since) {
						report(filepath.Dir(p))
					}
				}
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() && p != root && (skip[d.Name()] || depth >= 4) {
				return filepath.SkipDir
			}
			return nil
		})
	}
}

// reportNewRepo tells the user about a repository created in the session.
func reportNewRepo(spec *Spec, dir string) {
	msg := fmt.Sprintf("a new git repository appeared in %s during the session; its hooks and config (core.fsmonitor, core.hooksPath) run when git is used there: inspect %s/.git before running git in it", sanitizeLine(dir), sanitizeLine(dir))
	if spec.Notices != nil {
		fmt.Fprintf(spec.Notices, "fence: %s\n", msg)
	}
	if spec.Monitor != nil {
		fmt.Fprintf(spec.Monitor, "[fence:fs] new repository %s\n", sanitizeLine(dir))
	}
}
