package bench

import (
	"time"
)

// Result is what a run measured. The JSON names are the bench's contract.
type Result struct {
	Users      int64  `json:"users"`
	Channels   int    `json:"channels"`
	Sink       string `json:"sink"`
	Redis      string `json:"redis"`
	Recipients int64  `json:"recipients"` // people the campaign must reach
	Devices    int64  `json:"devices"`    // their devices: one provider request each
	SeedMs     int64  `json:"seed_ms"`
	// Send times are measured from the trigger (campaign.Create) to the
	// deliver stage's first and last recorded send.
	FirstSendMs int64   `json:"first_send_ms"`
	LastSendMs  int64   `json:"last_send_ms"`
	PerS        float64 `json:"per_s"` // devices sent per second, trigger to last send
	// Duplicates are repeated deliveries the design does not allow: people
	// dedupe forwarded twice, plus provider repeats beyond what the killed
	// deliverers had in flight.
	Duplicates int64 `json:"duplicates"`
	Missing    int64 `json:"missing"` // expected devices never delivered
	// FloorMs is one COPY of the recipients' tokens to /dev/null, in the
	// same run; RatioToFloor = LastSendMs / FloorMs.
	FloorMs      int64   `json:"floor_ms"`
	RatioToFloor float64 `json:"ratio_to_floor"`
	Kills        int     `json:"kills"`
	// ProviderDuplicates are repeated deliveries of a device;
	// ProviderDuplicatesAllowed is the in-flight cap of every killed
	// deliverer (DESIGN guarantee 3).
	ProviderDuplicates        int64 `json:"provider_duplicates"`
	ProviderDuplicatesAllowed int64 `json:"provider_duplicates_allowed"`
	Complete                  bool  `json:"complete"` // the campaign finished before the timeout
	// HugePages is, per server ("postgres", "redis", ...), whether its
	// memory was in huge pages at the end (hugePages).
	HugePages map[string]string `json:"huge_pages,omitempty"`
	// LoadAvg is the machine's 1-minute load average at the trigger and at
	// the end: on a shared box, other work slows the pipeline and the floor.
	LoadAvg [2]float64 `json:"load_avg"`
	// Machine is what the whole machine did during the campaign ([0], trigger
	// to end) and during the floor's COPY ([1]): both read the same tables on
	// the same cores, and what moves one and not the other (a page cache the
	// host dropped in between, CPU the host took) is not the pipeline.
	Machine [2]MachineUse `json:"machine"`

	Replicas     map[string]int        `json:"replicas"`
	Verification Verdict               `json:"verification"`
	Campaign     Counters              `json:"campaign"`
	Fake         *FakeSummary          `json:"fake,omitempty"`
	Processes    map[string]RoleUsage  `json:"processes"` // by role: CPU seconds and peak RSS
	KillLog      []Kill                `json:"kill_log,omitempty"`
	Notes        []string              `json:"notes,omitempty"`
	OutDir       string                `json:"out_dir"`
	Chart        string                `json:"chart"`
	Samples      []Sample              `json:"-"`
	StageRates   map[string]StageTotal `json:"stages"`
	ServerTime   ServerTime            `json:"server_time"`
}

// RoleUsage sums the processes of one role (all replicas, all restarts).
type RoleUsage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	Processes  int     `json:"processes"`
}

// StageTotal is a stage's input over the run.
type StageTotal struct {
	Entries    int64   `json:"entries"`
	PeakLag    int64   `json:"peak_backlog"`
	EntriesPer float64 `json:"entries_per_s"`
}

// summarize derives the timings and per-process figures from the samples.
func (r *Result) summarize(w *Watch, t0 time.Time) {
	if len(r.Samples) == 0 {
		return
	}
	last := r.Samples[len(r.Samples)-1]
	r.Campaign = last.Campaign
	if c := last.Campaign; c.FirstMs > 0 {
		r.FirstSendMs = c.FirstMs - t0.UnixMilli()
		r.LastSendMs = c.LastMs - t0.UnixMilli()
		if r.LastSendMs > 0 {
			r.PerS = float64(c.Sent) / (float64(r.LastSendMs) / 1000)
		}
	}
	if r.FloorMs > 0 {
		r.RatioToFloor = float64(r.LastSendMs) / float64(r.FloorMs)
	}
	r.Processes = roleUsage(r.Samples, w.Run)
	r.StageRates = map[string]StageTotal{}
	for _, st := range StageStreams {
		var t StageTotal
		for _, s := range r.Samples {
			ss := s.Streams[st.Stage]
			t.PeakLag = max(t.PeakLag, ss.Lag+ss.Pending)
		}
		first := r.Samples[0].Streams[st.Stage]
		t.Entries = last.Streams[st.Stage].Done() - first.Done()
		if d := last.At.Sub(r.Samples[0].At).Seconds(); d > 0 {
			t.EntriesPer = float64(t.Entries) / d
		}
		r.StageRates[st.Stage] = t
	}
}

// roleUsage adds up CPU (the growth of each process's counter between its
// first and last sample, over every incarnation) and the peak RSS per role.
func roleUsage(samples []Sample, run *Running) map[string]RoleUsage {
	role := map[string]string{}
	for _, p := range run.Fleet.Procs() {
		role[p.Name] = p.Role
	}
	type span struct{ first, last float64 }
	spans := map[string]*span{} // by name+incarnation: a restart resets the counter
	out := map[string]RoleUsage{}
	for _, s := range samples {
		for name, u := range s.Procs {
			rname := role[name]
			if rname == "" {
				rname = name // servers: redis, postgres
			}
			sp := spans[name]
			if sp == nil || u.CPUSeconds < sp.last {
				if sp != nil {
					ru := out[rname]
					ru.CPUSeconds += sp.last - sp.first
					out[rname] = ru
				}
				sp = &span{first: u.CPUSeconds, last: u.CPUSeconds}
				spans[name] = sp
			}
			sp.last = u.CPUSeconds
			ru := out[rname]
			ru.PeakRSSMB = max(ru.PeakRSSMB, float64(u.RSSBytes)/(1<<20))
			out[rname] = ru
		}
	}
	counted := map[string]bool{}
	for name, sp := range spans {
		rname := role[name]
		if rname == "" {
			rname = name
		}
		ru := out[rname]
		ru.CPUSeconds += sp.last - sp.first
		if !counted[name] {
			ru.Processes++
			counted[name] = true
		}
		out[rname] = ru
	}
	return out
}
