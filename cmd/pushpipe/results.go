package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/alecthomas/kong"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// ResultsCmd reads the results stream.
type ResultsCmd struct {
	Tail     ResultsTailCmd     `cmd:"" help:"Print result events as NDJSON as they are written, until interrupted."`
	Retire   ResultsRetireCmd   `cmd:"" help:"Remove a webhook receiver's group for good, so results are no longer kept for it."`
	Unretire ResultsUnretireCmd `cmd:"" help:"Bring a retired webhook receiver's group back, so its processes read again."`
}

// ResultsRetireCmd is `pushpipe results retire GROUP`: a receiver retired
// for good left its group, and results is trimmed only below what every
// group has read, so Redis kept every event for it until memory ran out.
type ResultsRetireCmd struct {
	Group string `arg:"" help:"The receiver's group: its pushpipe webhook --group (webhook when it was given none)."`
	Force bool   `help:"Remove it even while a process of the group reports running: that process then reads nothing more (it does not recreate the group) and says so; stop it."`
}

// Validate refuses a GROUP no receiver can have before Redis is dialled.
func (c *ResultsRetireCmd) Validate(kctx *kong.Context) error { return validReceiver(kctx, c.Group) }

// validReceiver says what is wrong with group, the GROUP argument, as a
// receiver's group.
func validReceiver(kctx *kong.Context, group string) error {
	if !given(kctx, "group") || webhook.ValidGroupName(group) {
		return nil // not given: kong says it is required
	}
	return fmt.Errorf("GROUP %q: a receiver's group is a word of letters, digits, '.', '_' or '-', such as analytics: "+
		"its pushpipe webhook --group (%s when it was given none)", group, webhook.DefaultGroup)
}

// Run retires the group on every partition.
func (c *ResultsRetireCmd) Run(g *Globals) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	return c.retire(g.Context(), rdb, g.Keys(), os.Stdout)
}

// retire says what went with the group in entries: each results entry is a
// batch of events (one deliver script call), and "13 events" it had not
// read were 13 entries, hundreds of events.
func (c *ResultsRetireCmd) retire(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, w io.Writer) error {
	r, err := pipeline.RetireGroup(ctx, rdb, keys, pipeline.StreamResults, c.Group, c.Force)
	if err != nil {
		return err
	}
	entries := thousands(r.Unread) + " entries"
	if r.Unread == 1 {
		entries = "1 entry"
	}
	fmt.Fprintf(w, "retired %s: its group is gone from %d partitions of results, with %s it had not read or acknowledged "+
		"(each a batch of events); results are trimmed without it from now on. Its dead letters stay in the DLQ, "+
		"for nobody to retry: pushpipe dlq drop --all --group %s drops them\n",
		c.Group, r.Partitions, entries, c.Group)
	if r.StillRunning {
		fmt.Fprintf(w, "a process of %s still runs: it reads nothing more and answers /readyz with 503; stop it for good "+
			"(delete its Deployment). Restarted, it stays idle: pushpipe results unretire %s brings the receiver back\n", c.Group, c.Group)
	}
	return nil
}

// ResultsUnretireCmd is `pushpipe results unretire GROUP`: the one way a
// retired receiver's group comes back. A start of its process does not
// (pipeline.Runner.createGroups): a pod restarted for any other reason would
// have POSTed the whole retention window to a receiver being retired.
type ResultsUnretireCmd struct {
	Group string `arg:"" help:"The retired receiver's group: its pushpipe webhook --group (webhook when it was given none)."`
	From  string `enum:"now,start" default:"now" help:"Where the group reads from: now (events written from now on) or start (every event results still keeps, those written while it was retired included)."`
}

// Validate refuses a GROUP no receiver can have before Redis is dialled.
func (c *ResultsUnretireCmd) Validate(kctx *kong.Context) error { return validReceiver(kctx, c.Group) }

// Run brings the group back on every partition.
func (c *ResultsUnretireCmd) Run(g *Globals) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	return c.unretire(g.Context(), rdb, g.Keys(), os.Stdout)
}

func (c *ResultsUnretireCmd) unretire(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, w io.Writer) error {
	at, from := "$", "events written from now on"
	if c.From == "start" {
		at, from = "0", "every event results keeps"
	}
	n, err := pipeline.UnretireGroup(ctx, rdb, keys, pipeline.StreamResults, c.Group, at)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "unretired %s on %d partitions of results: its processes read %s; one idle since the retirement "+
		"resumes within seconds, or start one (pushpipe webhook --group %s)\n", c.Group, n, from, c.Group)
	return nil
}

// ResultsTailCmd is `pushpipe results tail`. With --user and --no-follow
// it answers support's first question, "did user 42 get it, and if not,
// why?", from what results keeps: each of the user's devices' outcome and
// the provider's reason, then it exits.
type ResultsTailCmd struct {
	Campaign string   `help:"Only events of this campaign or direct message (its id)."`
	Outcome  []string `enum:"sent,failed,invalid" help:"Only these outcomes (sent, failed, invalid; repeat or comma-separate)."`
	User     []int64  `placeholder:"ID" help:"Only events of these users (repeat or comma-separate)."`
	From     string   `placeholder:"WHEN" help:"Start at: an entry id (1700000000000-0), unix ms, an RFC 3339 time, or a duration ago (15m); 0 for the oldest retained event. Default: now, new events only."`
	Follow   bool     `default:"true" negatable:"" help:"Go on printing events as they are written (default). --no-follow prints those results holds from --from (default with --campaign: its creation) up to the start, and exits."`

	from pipeline.Bound
}

// Validate reads --from as replay does, so a typo is named before any read,
// and checks --campaign and --user before Redis is dialled: a mistyped one
// printed nothing for ever, or, with Redis down, was said only once it was
// back. Every problem is said at once.
func (c *ResultsTailCmd) Validate() error {
	var errs []error
	var err error
	if c.from, err = pipeline.ParseBound(c.From, time.Now()); err != nil {
		errs = append(errs, fmt.Errorf("--from: %w", err))
	} else if !c.Follow && c.from.IsZero() && c.Campaign == "" {
		// From now to now is nothing: it would exit at once, having
		// searched nothing, as if there were nothing to find.
		errs = append(errs, errors.New("--no-follow reads what results holds from --from on: give --from (0 for the oldest event kept, or e.g. 2h), "+
			"or --campaign ID to read from its creation"))
	}
	if c.Campaign != "" {
		errs = append(errs, validID("--campaign", c.Campaign))
	}
	for _, u := range c.User {
		if u <= 0 {
			errs = append(errs, fmt.Errorf("--user: user ids are positive, got %d", u))
			break
		}
	}
	return errors.Join(errs...)
}

// creationSlack is how far before a campaign's creation (PostgreSQL's
// clock) --no-follow starts by default: results ids are Redis's clock.
const creationSlack = 5 * time.Second

// startAtCreation starts --no-follow of --campaign without --from at the
// campaign's (or message's) creation, less creationSlack: no event of it
// is older, and support need not know when it went out. PostgreSQL keeps
// the creation.
func (c *ResultsTailCmd) startAtCreation(g *Globals) error {
	if c.Follow || !c.from.IsZero() {
		return nil
	}
	db, err := g.DB(1)
	if err != nil {
		return fmt.Errorf("--no-follow without --from starts at the creation of %s, which PostgreSQL keeps: %w; or give --from", c.Campaign, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(g.Context(), refreshTimeout)
	defer cancel()
	cp, err := campaign.Load(ctx, db, c.Campaign)
	if errors.Is(err, campaign.ErrNotFound) {
		return fmt.Errorf("no campaign or direct message %s in PostgreSQL: check the id (--from reads results for any id)", c.Campaign)
	}
	if err != nil {
		return fmt.Errorf("%w (--from reads results without PostgreSQL)", err)
	}
	c.from = pipeline.TimeBound(cp.CreatedAt.Add(-creationSlack))
	return nil
}

// Run prints until SIGINT/SIGTERM; an entry it cannot read is named on
// stderr and passed over. It connects as the operator tools do (RedisNow):
// no Redis is said within 2 s, and a mistyped --prefix is refused, where a
// server's connection would record it as a new deployment and tail that,
// empty, forever.
func (c *ResultsTailCmd) Run(g *Globals) error {
	if err := c.startAtCreation(g); err != nil {
		return err
	}
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	return c.tail(g.Context(), rdb, g.Keys(), os.Stdout, os.Stderr, g.Logger())
}

// tail prints the events to w as NDJSON and, with --no-follow, ends with a
// line to note (stderr) saying how many it read and printed.
func (c *ResultsTailCmd) tail(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, w, note io.Writer, log zerolog.Logger) error {
	if c.Campaign != "" {
		// A mistyped id printed nothing, for ever, like a quiet campaign. It
		// may still be about to be sent: said, not refused.
		// Bounded as status is: with a master down the start hung, silent.
		known, err := within(ctx, refreshTimeout, func(ctx context.Context) (bool, error) {
			return rdb.Do(ctx, rdb.B().Hexists().Key(keys.Campaign(c.Campaign)).Field(campaign.HashExpiresMs).Build()).AsBool()
		})
		if err != nil {
			return fmt.Errorf("campaign %s: %w", c.Campaign, err)
		}
		if !known {
			// --no-follow waits for nothing: "waiting for its events"
			// there read as if some were coming, before an exit.
			then := "waiting for its events"
			if !c.Follow {
				then = "reading what results holds of it"
			}
			log.Warn().Str("campaign", c.Campaign).Msg("no campaign or direct message of this id in Redis (not sent yet, expired, or another --prefix); " + then)
		}
	}
	// Asked for more than results keeps (--from 3d, kept for 24h), the tail
	// began at the oldest kept with nothing saying the rest was gone.
	type trimmed struct {
		through time.Time
		ok      bool
	}
	tr, err := within(ctx, refreshTimeout, func(ctx context.Context) (trimmed, error) {
		through, ok, err := pipeline.Trimmed(ctx, rdb, keys.Streams(pipeline.StreamResults), c.from)
		return trimmed{through, ok}, err
	})
	if through, ok := tr.through, tr.ok; err != nil {
		return err
	} else if ok {
		log.Warn().Time("kept_from", through).Msgf("results keeps its events from %s on, older ones trimmed past the stages' --retention: "+
			"any between --from %s and then are gone; the oldest kept come first", through.Format(time.RFC3339), c.from)
	}
	enc := json.NewEncoder(w)
	var read, printed int
	err = pipeline.TailResults(ctx, rdb, keys, c.from, c.Follow, log, func(ev pipeline.ResultEvent) error {
		read++
		if c.Campaign != "" && ev.Campaign != c.Campaign && ev.Message != c.Campaign {
			return nil
		}
		if len(c.Outcome) > 0 && !slices.Contains(c.Outcome, ev.Outcome) {
			return nil
		}
		if len(c.User) > 0 && !slices.Contains(c.User, ev.UserID) {
			return nil
		}
		printed++
		return enc.Encode(ev)
	}, func(entry string, err error) {
		log.Warn().Str("entry", entry).Err(err).Msg("results entry passed over: malformed")
	})
	if err == nil && !c.Follow && ctx.Err() == nil {
		// On stderr, the events on stdout stay NDJSON: an empty answer
		// says it searched, and how much. A line for the operator who
		// ran it, not a log record: piped (`| jq`, `> out.ndjson`) it
		// was a JSON log line on the terminal, and under --log-level
		// warn nothing. A script reads the events, not this.
		// --from 0 is what results keeps first, said so: not the epoch,
		// and not "the start", beside "up to the start of this command".
		from := "the oldest kept"
		if !c.from.IsZero() && !c.from.IsStart() {
			from = c.from.String()
		}
		fmt.Fprintf(note, "%s printed of %s read, every one results held from %s up to the start of this command\n",
			thousands(int64(printed)), plural(int64(read), "event"), from)
	}
	return err
}
