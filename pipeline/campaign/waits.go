package campaign

import "slices"

// waitsOn is the stages (their groups) that have work for a campaign not
// done: split until it emitted every range, resolve until it recorded
// every range, dedupe until it read every id resolve emitted, and deliver
// until every target is done. Once a stage is through with a campaign,
// whether it runs says nothing of the campaign's progress.
func waitsOn(split, resolved, read bool) []string {
	stages := slices.Clone(campaignStages)
	switch {
	case !split:
		return stages
	case !resolved:
		return stages[1:]
	case !read:
		return stages[2:]
	}
	return stages[3:]
}

// campaignStages are the stages (their groups) a campaign passes through,
// in pipeline order.
var campaignStages = []string{"split", "resolve", "dedupe", "deliver"}

// holdsOf is the stages that hold a campaign's work now, by its counters:
// split until it emitted every range; resolve until it recorded every
// range (while split still cuts, whether the ranges out so far are all
// recorded is not counted, so resolve counts as holding some); dedupe
// while it has not read every id of the ranges recorded (resolve records
// a range once its ids are in dedupe's stream); deliver while targets
// dedupe passed on are not done. Unlike waitsOn, a stage ahead of the
// campaign's work that it is through with for now is not one of them.
func holdsOf(split, resolved, read, done bool) []string {
	var out []string
	for i, holds := range []bool{!split, !split || !resolved, !read, !done} {
		if holds {
			out = append(out, campaignStages[i])
		}
	}
	return out
}
