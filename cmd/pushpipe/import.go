package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// ImportCmd loads data in bulk.
type ImportCmd struct {
	Subscribers ImportSubscribersCmd `cmd:"" help:"Subscribe every user id of a file to a channel (COPY; idempotent)."`
}

// ImportSubscribersCmd is `pushpipe import subscribers --channel C FILE|-`.
type ImportSubscribersCmd struct {
	Channel string `required:"" help:"The channel to subscribe them to."`
	// Optional only so that its absence is said here: "expected <file>"
	// left a user who wrote `< ids.txt` to find the "-" in the help.
	File string `arg:"" optional:"" help:"One user id a line, or CSV (comma, semicolon or tab separated) with a user_id column; blank lines are skipped; - reads standard input."`
}

// Validate checks --channel by its name before any file is opened or
// progress shown: the import's own check said "channel: ...", after a
// progress line of 0 rows.
//
// Validate runs before kong's check of required flags: without --channel
// it said "--channel: must be 1–128 characters; got 0", as if a name had
// been given too short, so no --channel is said as what to add.
func (c *ImportSubscribersCmd) Validate() error {
	errs := []error{devices.ValidateName("--channel", c.Channel)}
	if c.Channel == "" {
		errs[0] = errors.New("--channel: give the channel to subscribe them to (--channel news)")
	}
	if c.File == "" {
		channel := c.Channel
		if errs[0] != nil {
			channel = "C"
		}
		errs = append(errs, errors.New("no FILE: name the file of user ids, or give - to read them from standard input "+
			"(pushpipe import subscribers --channel "+channel+" - < ids.txt)"))
	} else if c.File != "-" {
		// Said here, with what to give: Run's "open ids.txt: no such file
		// or directory" (exit 1) named neither the argument nor the "-",
		// and a directory failed only at its first line.
		if st, err := os.Stat(c.File); errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("FILE %q: no such file: name the file of user ids, or give - to read them from standard input", c.File))
		} else if err != nil {
			errs = append(errs, fmt.Errorf("FILE %q: %w", c.File, err))
		} else if st.IsDir() {
			errs = append(errs, fmt.Errorf("FILE %q: is a directory: name the file of user ids in it", c.File))
		}
	}
	return errors.Join(errs...) // every problem at once
}

// Run imports the file with a progress bar (bytes and rows) on standard
// error, and names the malformed lines it skipped.
func (c *ImportSubscribersCmd) Run(g *Globals) error {
	in, size := io.Reader(os.Stdin), int64(0)
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	db, err := g.DB(2)
	if err != nil {
		return err
	}
	defer db.Close()
	tty := isatty.IsTerminal(os.Stderr.Fd())
	start, last := time.Now(), time.Time{}
	shown := [2]int64{-1, -1} // the bytes and rows of the last line a log got
	show := func(read, rows int64, final bool) {
		if !final && time.Since(last) < 200*time.Millisecond && tty || !final && !tty && time.Since(last) < 5*time.Second {
			return
		}
		last = time.Now()
		rate := float64(rows) / max(time.Since(start).Seconds(), 0.001)
		line := fmt.Sprintf("%s rows  %s  %s rows/s", thousands(rows), byteSize(read), thousands(int64(rate)))
		if size > 0 {
			frac := min(float64(read)/float64(size), 1)
			line = fmt.Sprintf("%s %5.1f%%  %s / %s", progressBar(frac, 30, tty), 100*frac, byteSize(read), byteSize(size)) +
				fmt.Sprintf("  %s rows  %s rows/s", thousands(rows), thousands(int64(rate)))
		}
		if tty {
			fmt.Fprint(os.Stderr, "\r\x1b[K"+line)
			if final {
				fmt.Fprintln(os.Stderr)
			}
			return
		}
		if now := [2]int64{read, rows}; now != shown { // the final line would repeat the last one when nothing came since
			fmt.Fprintln(os.Stderr, line)
			shown = now
		}
	}
	var read int64
	res, err := devices.ImportSubscribers(g.Context(), db, c.Channel, in, func(n, rows int64) {
		read = n
		show(n, rows, false)
	})
	show(read, res.Rows, true)
	if err != nil {
		return importFailure(err, res)
	}
	fmt.Fprintln(os.Stderr, importSummary(res, c.Channel, time.Since(start)))
	if res.Bad == 0 {
		return nil
	}
	for _, b := range res.BadList {
		fmt.Fprintf(os.Stderr, "line %d: %s\n", b.Line, b.Reason)
	}
	if int64(len(res.BadList)) < res.Bad {
		fmt.Fprintf(os.Stderr, "... and %d more\n", res.Bad-int64(len(res.BadList)))
	}
	if res.Bad == 1 {
		return errors.New("1 malformed line was skipped (the rest is imported): correct it and import the file again")
	}
	return fmt.Errorf("%d malformed lines were skipped (the rest is imported): correct them and import the file again", res.Bad)
}

// importFailure says, with an import's error, what it kept: the chunks
// before the error are committed, and "(after 1000000 rows): context
// canceled" left a user who pressed Ctrl-C to guess whether they were, and
// whether running it again would import them twice.
func importFailure(err error, res devices.ImportResult) error {
	if errors.Is(err, context.Canceled) {
		err = fmt.Errorf("interrupted: %w", err)
	}
	if res.Rows == 0 {
		return err
	}
	verb := "are"
	if res.Rows == 1 {
		verb = "is"
	}
	return fmt.Errorf("%w; the first %s %s imported, and importing the file again adds the rest (an import is idempotent)",
		err, plural(res.Rows, "user id"), verb)
}

// importSummary says what an import added: new subscriptions, and apart
// from them the ids that were repeated in the file or subscribed already,
// which "imported N subscribers" counted as imported.
func importSummary(res devices.ImportResult, channel string, took time.Duration) string {
	line := fmt.Sprintf("imported %s of %s from %s in %s", plural(res.Added, "subscriber"), channel,
		plural(res.Lines, "line"), took.Round(time.Millisecond))
	if same := res.Rows - res.Added; same > 0 {
		line = fmt.Sprintf("imported %s of %s from %s in %s (%s read: %s repeated in the file or subscribed already)",
			plural(res.Added, "new subscriber"), channel, plural(res.Lines, "line"), took.Round(time.Millisecond),
			plural(res.Rows, "user id"), thousands(same))
	}
	return line
}

// byteSize is n bytes in the unit that shows them: a file of a few
// thousand ids read "0.0 MiB / 0.0 MiB" in MiB alone.
func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
