package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// StageStreams maps each stage to the stream it consumes: the stages a
// campaign passes through first, in pipeline order (charts take those),
// then the others.
var StageStreams = func() []struct{ Stage, Stream string } {
	var out, rest []struct{ Stage, Stream string }
	for _, s := range pipeline.Stages {
		row := struct{ Stage, Stream string }{s.Name, s.Stream}
		if s.Campaign {
			out = append(out, row)
		} else {
			rest = append(rest, row)
		}
	}
	return append(out, rest...)
}()

// campaignStages is how many of StageStreams a campaign passes through.
var campaignStages = func() (n int) {
	for _, s := range pipeline.Stages {
		if s.Campaign {
			n++
		}
	}
	return n
}()

// StreamSample is a stage's input stream summed over its partitions: entries
// appended (length), not yet read by the stage's group (lag), read but not
// acknowledged (pending).
type StreamSample struct {
	Length  int64 `json:"length"`
	Lag     int64 `json:"lag"`
	Pending int64 `json:"pending"`
}

// Done is how many entries the stage finished (acked).
func (s StreamSample) Done() int64 { return s.Length - s.Lag - s.Pending }

// Counters are a campaign's counters summed over the partitions.
type Counters struct {
	Targets, Sent, Failed, Invalid, Muted, Dups, UsersDone int64
	FirstMs, LastMs                                        int64
	SplitDone                                              bool
	Retries                                                int64 // users waiting in deliver's retry sets
}

// Sample is one look at the pipeline, every 250 ms.
type Sample struct {
	At       time.Time
	Streams  map[string]StreamSample // by stage
	Campaign Counters
	Procs    map[string]ProcUsage // by process name
}

// sampler reads the streams, the campaign's counters and the processes.
type sampler struct {
	rdb      rueidis.Client
	keys     pipeline.Keys
	campaign string
	pids     func() map[string]int
	trees    map[string]bool // names whose children are summed (postgres)
}

func (s *sampler) sample(ctx context.Context) (Sample, error) {
	out := Sample{At: time.Now(), Streams: map[string]StreamSample{}, Procs: map[string]ProcUsage{}}
	var keys []string
	for _, st := range StageStreams {
		keys = append(keys, s.keys.Streams(st.Stream)...)
	}
	cmds := make(rueidis.Commands, 0, len(keys)+s.keys.Partitions)
	for _, k := range keys {
		cmds = append(cmds, s.rdb.B().Xlen().Key(k).Build())
	}
	for p := range s.keys.Partitions {
		cmds = append(cmds, s.rdb.B().Zcard().Key(pipeline.DelayedKey(s.keys.Stream(pipeline.StreamDeliver, p))).Build())
	}
	res := s.rdb.DoMulti(ctx, cmds...)
	live, err := campaign.Counters(ctx, s.rdb, s.keys, s.campaign)
	if err != nil {
		return out, err
	}
	groups, err := pipeline.StreamGroups(ctx, s.rdb, keys)
	if err != nil {
		return out, err
	}
	i := 0
	for _, st := range StageStreams {
		var ss StreamSample
		for range s.keys.Partitions {
			n, err := res[i].AsInt64()
			if err != nil && !rueidis.IsRedisNil(err) {
				return out, fmt.Errorf("xlen %s: %w", keys[i], err)
			}
			ss.Length += n
			for _, g := range groups[i] {
				if g.Name == st.Stage {
					ss.Lag += max(g.Lag, 0)
					ss.Pending += g.Pending
				}
			}
			i++
		}
		out.Streams[st.Stage] = ss
	}
	out.Campaign = Counters{
		Targets: live.Targets, Sent: live.Sent, Failed: live.Failed, Invalid: live.InvalidTokens,
		Muted: live.Muted, Dups: live.DuplicatesSuppressed, UsersDone: live.UsersDone,
		FirstMs: live.FirstSendMs, LastMs: live.LastSendMs, SplitDone: live.SplitDone,
	}
	for range s.keys.Partitions {
		n, _ := res[i].AsInt64()
		out.Campaign.Retries += n
		i++
	}
	out.Procs = usageOf(s.pids(), s.trees)
	return out, nil
}

// usageOf reads the usage of every process of pids by name, with its
// children for the names in trees (postgres and its backends).
func usageOf(pids map[string]int, trees map[string]bool) map[string]ProcUsage {
	out := map[string]ProcUsage{}
	for name, pid := range pids {
		if pid == 0 {
			continue
		}
		var u ProcUsage
		var ok bool
		if trees[name] {
			u, ok = treeUsage(pid)
		} else {
			u, ok = readUsage(pid)
		}
		if ok {
			out[name] = u
		}
	}
	return out
}

// Quiet reports whether no stage has work left: every campaign stream read
// and acknowledged and no retry waiting. Only the campaign's stages count:
// ingest's and the webhook's groups may lag for ever where nothing runs
// them (a webhook group left by an earlier `pushpipe webhook` kept `make
// dev` waiting a minute, then failing a demo campaign that was done).
func (s Sample) Quiet() bool {
	for _, st := range StageStreams[:campaignStages] {
		if ss := s.Streams[st.Stage]; ss.Lag > 0 || ss.Pending > 0 {
			return false
		}
	}
	return s.Campaign.Retries == 0
}
