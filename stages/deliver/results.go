package deliver

import "strconv"

// appendResults appends the device part of markScript's arguments for marks
// of one outcome: how many, then per device its id, user, platform, token
// and reason, from which the script writes the result event of each device
// it marks for the first time (pipeline.ResultEvent).
func appendResults(args []string, marks []markReq) []string {
	args = append(args, strconv.Itoa(len(marks)))
	for _, m := range marks {
		args = append(args, strconv.FormatInt(m.d.id, 10), strconv.FormatInt(m.d.user, 10), string(m.d.platform), m.d.token, m.reason)
	}
	return args
}
