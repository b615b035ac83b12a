package pipeline

// Field names of the entries each stream carries: the contract between stages.
//
//	ingest     ev, or op, app, token, platform, user, locale, at  partition: HashPartition(app+"/"+token)
//	campaigns  campaign                                       partition: HashPartition(campaign)
//	ranges     campaign, channel, range, lo, hi              partition: HashPartition(campaign+"/"+range)
//	dedupe     campaign, u (reached ids), m (muted ids), range, rd, exp_ms  partition: UserPartition of every id (a message of at most campaign.WholeMessageUsers: HashPartition(message))
//	deliver    campaign, u, force, force_devices, rounds, slot_ms  partition: dedupe's
//	results    campaign or message, app, at_ms, events, skip (ResultHeader, ResultRecords)  partition: deliver's
//
// u and m are EncodeIDs batches, sorted ascending. An ingest entry is either
// one ev field (devices.Event.Message writes registrations so) or one field
// per part (deletions, invalidations, and entries written before ev existed).
const (
	FieldEvent    = "ev"       // ingest: op, app, token, platform, user, locale, at joined by tabs (absent platform/user empty)
	FieldOp       = "op"       // ingest: put | delete | invalidate
	FieldApp      = "app"      // ingest
	FieldToken    = "token"    // ingest
	FieldPlatform = "platform" // ingest: ios | android
	FieldUser     = "user"     // ingest: decimal user id
	FieldLocale   = "locale"   // ingest
	FieldAt       = "at"       // ingest: event time, unix microseconds

	FieldCampaign = "campaign"  // campaigns, ranges, dedupe, deliver: campaign id
	FieldChannel  = "channel"   // ranges
	FieldRange    = "range"     // ranges, dedupe: deterministic range id
	FieldLo       = "lo"        // ranges: first user id (inclusive)
	FieldHi       = "hi"        // ranges: last user id (inclusive)
	FieldUsers    = "u"         // dedupe, deliver: EncodeIDs of user ids
	FieldMuted    = "m"         // dedupe: EncodeIDs of users muted on this channel/category
	FieldReading  = "rd"        // dedupe: resolve's tag of the reading of the range the ids come from (RangeRecord)
	FieldSlotMs   = "slot_ms"   // deliver: a capped campaign's entry sent later: the start of its reserved slot, unix ms
	FieldSlotRate = "slot_rate" // deliver: the campaign's rate its slot was reserved at (absent: not known)
	FieldExpires  = "exp_ms"    // dedupe: a message's expiry, unix ms, as its campaign hash holds it (absent: read from there)

	FieldMessage = "message" // results: direct message id (instead of campaign)
	FieldAtMs    = "at_ms"   // results: when the outcomes were recorded, unix ms
	FieldEvents  = "events"  // results: a record per device (ResultRecords)
	FieldSkip    = "skip"    // results: comma-separated ids of devices whose records are repeats
)

// Ingest operations.
const (
	OpPut        = "put"
	OpDelete     = "delete"
	OpInvalidate = "invalidate"
)

// Campaign counter fields. Per-partition counters live in Keys.Stats(p, c) and
// are summed by readers; campaign-wide facts live in Keys.Campaign(c).
const (
	StatIn        = "in"         // dedupe: user ids read (reached + muted, repeats included)
	StatTargets   = "targets"    // dedupe: people forwarded to deliver (first sightings)
	StatMuted     = "muted"      // dedupe: people seen only as muted so far
	StatDups      = "dups"       // dedupe: sightings suppressed as repeats
	StatUsersDone = "users_done" // deliver: targets that reached a terminal state
	StatSent      = "sent"       // deliver: devices accepted by the provider
	StatFailed    = "failed"     // deliver: devices permanently failed
	StatInvalid   = "invalid"    // deliver: devices whose token the provider rejected as invalid
	StatNoDevices = "no_devices" // deliver: targets with no device of the app, done unsent
	// StatUnsent counts, of StatFailed, the devices failed with no provider
	// request: their notification expired, their app has no credentials for
	// the platform, or their campaign failed. A campaign's sends per second
	// leave them out: such devices are failed at once, and a capped
	// campaign read far above its cap.
	StatUnsent  = "unsent"
	StatFirstMs = "first_ms" // deliver: unix ms of the first send (min over partitions)
	StatLastMs  = "last_ms"  // deliver: unix ms of the last send (max over partitions)
	// StatDoneMs is when a target last became terminal, in unix ms of
	// Redis's clock (max over partitions): once every target is, the
	// campaign's end, which its finished_at records whenever it is read.
	StatDoneMs = "done_ms"
	// StatDonePace is deliver's two latest readings of StatUsersDone in the
	// partition, "<ms>,<done>[,<ms>,<done>]" newest first (ms in Redis's
	// clock), a new one taken once the newest is DonePaceEvery old: what
	// was done since the older one is the campaign's pace now, where the
	// average since the first send still carries a slow start or a
	// provider that has slowed down since (ParseDonePace).
	StatDonePace = "done_pace"
	// StatReadPrefix starts dedupe's per-reading counters (ReadField): the
	// ids it read of one reading of a range by resolve.
	StatReadPrefix = "read:"
	// StatInReadings is the ids of StatIn that came tagged with a reading
	// and were counted per reading. Less than StatIn: some were read by a
	// dedupe before readings, or came from a resolve before them.
	StatInReadings = "in_readings"

	CampaignSplitDone   = "split_done"   // split: "1" once every range was emitted
	CampaignRangesTotal = "ranges_total" // split: number of ranges
	CampaignFailed      = "failed"       // deliver: reason, when a payload/auth error failed the campaign
	// CampaignPacedMs is where a capped campaign's schedule of entries
	// ends, in unix ms of Redis's clock: the next entry's slot (deliver's
	// pace.go).
	CampaignPacedMs = "paced_ms"
	// CampaignPacedRate is the rate the schedule is reserved at, and
	// CampaignPacedAtMs when it last changed (Redis's clock, unix ms):
	// when the campaign's rate changes (campaign.SetRate) the rest of the
	// schedule, and the slots of its entries put off before, are stretched
	// or shrunk from then by the ratio of the two rates.
	CampaignPacedRate = "paced_rate"
	CampaignPacedAtMs = "paced_at_ms"
	// CampaignAudience is the subscribers of a campaign's channels (a sum:
	// a user in two channels counts twice), counted by split when a
	// campaign takes it more than one call (a capped campaign cut as it
	// goes, a large one held back by deliver's backlog): what its progress
	// goes by while its targets are still being found.
	CampaignAudience = "audience"
)
