package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// WriteJSON writes the result to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteJSON writes the messages result to path (`bench --messages --json`).
func (r *MessagesResult) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// OK reports whether the run met the bench's correctness bar: complete,
// nothing missing, nothing unexpected, no duplicate beyond what the design
// allows.
func (r *Result) OK() bool {
	return r.Complete && r.Missing == 0 && r.Duplicates == 0 && r.Verification.Unexpected == 0
}

// WriteMarkdown writes the result as Markdown tables.
func (r *Result) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| users | channels | redis | sink | recipients | devices | first send | last send | per s | floor | ratio to floor | missing | duplicates | kills |\n")
	fmt.Fprintf(w, "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %d | %d | %d |\n\n",
		Thousands(r.Users), r.Channels, r.Redis, r.Sink, Thousands(r.Recipients), Thousands(r.Devices),
		ms(r.FirstSendMs), ms(r.LastSendMs), Thousands(int64(r.PerS)), ms(r.FloorMs), r.RatioToFloor,
		r.Missing, r.Duplicates, r.Kills)

	v := r.Verification
	fmt.Fprintf(w, "| check | value |\n|---|---:|\n")
	fmt.Fprintf(w, "| complete (every target terminal, pipeline quiet) | %v |\n", r.Complete)
	fmt.Fprintf(w, "| seed (COPY, indexes rebuilt) | %s |\n", ms(r.SeedMs))
	fmt.Fprintf(w, "| machine load average at trigger / end (2 cores) | %.1f / %.1f |\n", r.LoadAvg[0], r.LoadAvg[1])
	for i, during := range []string{"the campaign", "the floor"} {
		m := r.Machine[i]
		fmt.Fprintf(w, "| machine during %s: CPU s busy / stolen by the host / waiting on disk; disk read | %.1f / %.1f / %.1f; %.0f MB |\n",
			during, m.BusyS, m.StealS, m.IOWaitS, m.DiskReadMB)
	}
	for _, name := range slices.Sorted(maps.Keys(r.HugePages)) {
		fmt.Fprintf(w, "| %s memory in huge pages | %s |\n", name, r.HugePages[name])
	}
	fmt.Fprintf(w, "| campaign targets / users done | %s / %s |\n", Thousands(r.Campaign.Targets), Thousands(r.Campaign.UsersDone))
	fmt.Fprintf(w, "| sent / failed / invalid (devices) | %s / %s / %s |\n", Thousands(r.Campaign.Sent), Thousands(r.Campaign.Failed), Thousands(r.Campaign.Invalid))
	fmt.Fprintf(w, "| duplicates suppressed by dedupe | %s |\n", Thousands(r.Campaign.Dups))
	fmt.Fprintf(w, "| delivered (requests) / distinct devices | %s / %s |\n", Thousands(v.Delivered), Thousands(v.Unique))
	fmt.Fprintf(w, "| missing / unexpected | %d / %d |\n", v.Missing, v.Unexpected)
	fmt.Fprintf(w, "| people in the deliver stream / repeated (dedupe) | %s / %d |\n", Thousands(v.DeliverEntries), v.DedupeDuplicates)
	fmt.Fprintf(w, "| provider duplicates / allowed (in-flight of killed deliverers) | %d / %d |\n", r.ProviderDuplicates, r.ProviderDuplicatesAllowed)
	if r.Fake != nil {
		fmt.Fprintf(w, "| fake provider: requests / accepted / peak req/s / connections | %s / %s / %s / %d |\n",
			Thousands(int64(r.Fake.Requests)), Thousands(int64(r.Fake.Accepted)), Thousands(int64(r.Fake.PeakRPS)), r.Fake.Connections)
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "| stage | entries | entries/s | peak backlog |\n|---|---:|---:|---:|\n")
	for _, st := range StageStreams {
		t := r.StageRates[st.Stage]
		if t.Entries == 0 && t.PeakLag == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", st.Stage, Thousands(t.Entries), Thousands(int64(t.EntriesPer)), Thousands(t.PeakLag))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "| process | count | CPU s | peak RSS MB |\n|---|---:|---:|---:|\n")
	for _, n := range slices.Sorted(maps.Keys(r.Processes)) {
		u := r.Processes[n]
		fmt.Fprintf(w, "| %s | %d | %.1f | %.0f |\n", n, u.Processes, u.CPUSeconds, u.PeakRSSMB)
	}
	r.ServerTime.writeMarkdown(w, "during the campaign")
	if len(r.KillLog) > 0 {
		fmt.Fprintf(w, "\nkills: ")
		var ks []string
		for _, k := range r.KillLog {
			s := fmt.Sprintf("%s@%.1fs", k.Process, float64(k.AtMs)/1000)
			if k.InFlight >= 0 {
				s += fmt.Sprintf("(in flight %d)", k.InFlight)
			}
			ks = append(ks, s)
		}
		fmt.Fprintln(w, strings.Join(ks, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
}

func ms(v int64) string {
	if v >= 10_000 {
		return fmt.Sprintf("%.1f s", float64(v)/1000)
	}
	return fmt.Sprintf("%d ms", v)
}

// Thousands formats n with thousands separators: 1,234,567.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// writeMarkdown writes the server time as two tables, headed "... (when)".
func (st ServerTime) writeMarkdown(w io.Writer, when string) {
	if len(st.Redis) > 0 {
		fmt.Fprintf(w, "\n| Redis command (%s) | calls | total ms |\n|---|---:|---:|\n", when)
		for _, c := range st.Redis {
			fmt.Fprintf(w, "| %s | %s | %.0f |\n", c.Name, Thousands(c.Calls), c.TotalMs)
		}
	}
	if len(st.Postgres) > 0 {
		fmt.Fprintf(w, "\n| PostgreSQL statement (%s) | calls | total ms | blocks read outside shared buffers |\n|---|---:|---:|---:|\n", when)
		for _, c := range st.Postgres {
			fmt.Fprintf(w, "| `%s` | %s | %.0f | %s of %s |\n", strings.ReplaceAll(c.Name, "|", "\\|"), Thousands(c.Calls), c.TotalMs,
				Thousands(c.BlocksRead), Thousands(c.BlocksTouched))
		}
	}
}
