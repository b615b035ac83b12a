package bench

import (
	"context"
	"strings"
	"time"
)

// While dev serves, its processes are a deployment's: a stage that dies
// (a crash, an OOM kill, kill -9 to see what happens) is started again,
// as Kubernetes would, and dev says so, with how it ended and the end of
// its log. Before, dev went on serving in silence with the stage gone:
// campaigns stopped at it, and only `pushpipe status` told why.

// superviseEvery is how often dev looks for processes that ended.
const superviseEvery = time.Second

// restartBudget is how many times in restartWindow a process is started
// again: one that keeps dying (a bad flag, a port taken) is left down,
// said once, instead of a restart loop filling the screen.
const (
	restartBudget = 3
	restartWindow = time.Minute
)

// supervise starts again, every every, the processes of f that ended,
// until ctx ends, saying what happened through say.
func supervise(ctx context.Context, f *Fleet, every time.Duration, say func(string, ...any)) {
	exits := map[*Proc][]time.Time{}
	left := map[*Proc]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range f.Procs() {
			if left[p] || !p.Exited() || ctx.Err() != nil {
				continue
			}
			now := time.Now()
			var recent []time.Time
			for _, at := range exits[p] {
				if now.Sub(at) < restartWindow {
					recent = append(recent, at)
				}
			}
			exits[p] = append(recent, now)
			tail := lastLines(p.LogTail(4000), 5)
			if len(exits[p]) > restartBudget {
				left[p] = true
				say("%s ended again (%s), %d times within %v: not starting it again. Its log %s ends:\n%s",
					p.Name, p.ExitState(), len(exits[p]), restartWindow, relPath(p.LogPath()), tail)
				continue
			}
			say("%s ended (%s); starting it again. Its log %s ends:\n%s", p.Name, p.ExitState(), relPath(p.LogPath()), tail)
			if err := p.Start(); err != nil {
				left[p] = true
				say("%s could not be started again: %v", p.Name, err)
			}
		}
	}
}

// lastLines is the last n lines of s, indented.
func lastLines(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return "  (nothing)"
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
