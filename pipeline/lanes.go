package pipeline

import "fmt"

// Lane is the priority lane of an entry. A stage whose row has Express reads
// two streams per partition: its bulk stream (the row's Stream) and the
// express one (Express.Stream of it), and an express entry never waits for a
// handler behind bulk batches already read (Runner.Run says how). Stages
// upstream of a lane carry the lane of their input to their output.
type Lane uint8

const (
	Bulk    Lane = iota // campaigns of priority "normal"
	Express             // messages, and campaigns of priority "high"
)

// Express streams: the lanes of the stages that have one.
const (
	StreamDedupeExpress  = StreamDedupe + expressSuffix
	StreamDeliverExpress = StreamDeliver + expressSuffix
)

const expressSuffix = "-express"

// Stream is the logical stream of the lane: name itself in the bulk lane,
// its express twin in the express lane.
func (l Lane) Stream(name string) string {
	if l == Express {
		return name + expressSuffix
	}
	return name
}

func (l Lane) String() string {
	if l == Express {
		return "express"
	}
	return "bulk"
}

// Priorities of campaigns and messages (DESIGN: "priority").
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
)

// LaneOf is the lane of a priority: high rides express, normal bulk, and ""
// the given default's lane (messages default to high, campaigns to normal).
func LaneOf(priority, def string) (Lane, error) {
	if priority == "" {
		priority = def
	}
	switch priority {
	case PriorityHigh:
		return Express, nil
	case PriorityNormal:
		return Bulk, nil
	}
	return Bulk, fmt.Errorf(`priority: must be "high" or "normal", got %q`, priority)
}
