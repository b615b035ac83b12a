package pipeline

// FieldForce = "1" on a dedupe or deliver entry asks the stage to bypass its
// idempotency marks for that entry: `pushpipe replay --force` sets it on the
// entries it re-injects, and nothing else ever does.
//
//	dedupe   forwards every reached user of the entry to deliver even if its
//	         seen mark is set, and copies force=1 onto what it emits, so the
//	         resend is not stopped one stage later;
//	deliver  sends to the entry's users' devices even if their sent marks are
//	         set (and sets them again).
//
// The other stages are idempotent by construction and have no marks to bypass
// (ingest applies events by event time, split and resolve only re-emit what
// dedupe will suppress), so replay refuses --force for their streams.
const FieldForce = "force"

// FieldForceDevices on a deliver entry lists devices (ids, EncodeIDs,
// ascending) to send to even if their sent marks are set: those a forced
// round left to retry. A forced round marks every device it gets an answer
// for, so its retry must not be forced whole (the devices the provider took
// would be sent a third time) nor plain (the devices it failed were marked
// by the send before the replay, and would be skipped). deliver writes it
// on the retries and dead letters of forced rounds; a replay without
// --force drops it with FieldForce (it sends nothing that went out once),
// `pushpipe dlq retry` keeps it.
const FieldForceDevices = "force_devices"

// FieldGroup names the one consumer group that is to handle an entry:
// `pushpipe dlq retry` sets it on what it re-injects, so a dead letter goes
// back to the group that gave up on it (the one webhook receiver that was
// down), not to every group that reads the stream. The runners of the
// other groups ack it unhandled.
const FieldGroup = "group"
