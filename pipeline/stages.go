package pipeline

// StageDef is one row of the stage table: everything about a stage that is
// not its handler. Subcommands, `pushpipe all`, status, replay, the DLQ
// tools, the benchmark and the deploy manifests all derive from Stages, so a
// new stage is one row here plus its package (and its line in cmd/pushpipe's
// registry, with its flags).
type StageDef struct {
	Name   string // subcommand, consumer group and metrics label
	Stream string // the logical stream it reads
	// Batch is the default XREADGROUP COUNT: how much one handler call takes.
	Batch int
	// Concurrency is the default number of handlers at once.
	Concurrency int
	// Campaign is true for the stages a campaign passes through (the
	// benchmark charts their backlogs).
	Campaign bool
	// DB is true when the stage needs PostgreSQL.
	DB bool
	// Delays is true when entries of its stream may wait in the stream's
	// delayed set (Batch.EmitAt, EmitAt): its runners poll that set. The
	// others never do, so a fleet does not spend Redis calls on empty sets.
	Delays bool
	// MaxDeliveries overrides the runner's default (10) where an entry
	// delivered many times is not a sign of poison.
	MaxDeliveries int64
	// Replicas is how many processes the benchmark gives it on a 2-core box.
	Replicas int
	// Outputs are the streams it writes that no stage may read (results
	// without a webhook): its runner trims them (TrimOutput).
	Outputs []string
	// Optional stages run only where configured: `pushpipe all` leaves
	// them out unless their flags are given (the webhook needs a URL).
	Optional bool
	// Express is true for the stages with an express lane (lanes.go): they
	// read Express.Stream(Stream) of a partition before Stream.
	Express bool
	// ExpressConcurrency is the default number of handlers that take
	// express batches only (Options.ExpressConcurrency); 0: the runner's.
	ExpressConcurrency int
}

// Stages is the stage table, in pipeline order. Why each default is what it
// is, is said at its row.
var Stages = []StageDef{
	// A batch is collapsed per token and upserted in one statement: large
	// batches are what make an app-open storm cheap.
	{Name: "ingest", Stream: StreamIngest, Batch: 5000, Concurrency: 4, DB: true, Replicas: 1},
	// A campaign entry is a whole campaign's split: one at a time per read.
	// Scheduled campaigns wait in its delayed set (send_at).
	{Name: "split", Stream: StreamCampaigns, Batch: 1, Concurrency: 4, Campaign: true, DB: true, Delays: true, Replicas: 1},
	// A range is a few thousand users: a couple per read spread a campaign
	// over every resolve process. A range's work is mostly waiting for
	// PostgreSQL and Redis, so more handlers than cores keep both busy.
	{Name: "resolve", Stream: StreamRanges, Batch: 2, Concurrency: 8, Campaign: true, DB: true, Replicas: 2},
	// Entries carry up to ~2000 users each; one script call marks a read.
	{Name: "dedupe", Stream: StreamDedupe, Batch: 50, Concurrency: 4, Campaign: true, Replicas: 1, Express: true},
	// Entries carry up to ~1000 users each: a few per read keep a process's
	// share of work small enough to hand over quickly.
	// Retries wait in its delayed set. Its entries are long in flight (a
	// rate-limited provider), so a fleet that crash-loops redelivers them
	// many times; that is not poison (malformed entries are dead-lettered
	// at once), hence more deliveries before the DLQ. It writes results,
	// which may have no reader: it trims them.
	// Its express handlers wait on the provider for most of a batch (every
	// send's answer): beside a campaign that fills the provider's queue that
	// is 100-400 ms, and with the runner's 2 a process, messages at 40/s
	// waited ~500 ms for a handler. Idle ones cost a parked goroutine; the
	// sends stay bounded by --express-in-flight.
	{Name: "deliver", Stream: StreamDeliver, Batch: 8, Concurrency: 4, Campaign: true, DB: true, Delays: true,
		MaxDeliveries: 100, Replicas: 2, Express: true, ExpressConcurrency: 16, Outputs: []string{StreamResults}},
	// A results entry holds the events of a mark call's devices: a read is
	// POSTed to the operator's URL in requests of the webhook's own --batch
	// events, and a few handlers POSTing at once keep a slow receiver busy.
	// No replicas: the benchmark has no receiver.
	{Name: "webhook", Stream: StreamResults, Batch: 500, Concurrency: 4, Optional: true},
}

// StageNamed returns the row of the stage called name.
func StageNamed(name string) (StageDef, bool) {
	for _, s := range Stages {
		if s.Name == name {
			return s, true
		}
	}
	return StageDef{}, false
}

// StageOf is the stage (and consumer group) that reads a logical stream,
// either of its lanes, or "" for streams no stage consumes (dlq).
func StageOf(stream string) string {
	for _, s := range Stages {
		for _, in := range s.Inputs() {
			if in == stream {
				return s.Name
			}
		}
	}
	return ""
}

// Inputs are the logical streams the stage reads, express lane first.
func (s StageDef) Inputs() []string {
	if s.Express {
		return []string{Express.Stream(s.Stream), s.Stream}
	}
	return []string{s.Stream}
}

// StageStreams lists the streams the stages read, in pipeline order (a
// stage's express lane before its bulk one): what `pushpipe status` shows
// and claims, trims and replays cover.
func StageStreams() []string {
	var out []string
	for _, s := range Stages {
		out = append(out, s.Inputs()...)
	}
	return out
}

// Options are the runner options of the stage's row, for its defaults.
func (s StageDef) Options() Options {
	return Options{Stage: s.Name, Stream: s.Stream, Express: s.Express, ExpressConcurrency: s.ExpressConcurrency,
		BatchSize: s.Batch, Concurrency: s.Concurrency, Outputs: s.Outputs}
}

// Effective returns o with every default filled in, as NewRunner would: what
// a handler that must agree with its runner (group, consumer, claim idle)
// is built with.
func (o Options) Effective(keys Keys) Options {
	o.defaults()
	if len(o.Partitions) == 0 {
		for p := 0; p < keys.Partitions; p++ {
			o.Partitions = append(o.Partitions, p)
		}
	}
	return o
}
