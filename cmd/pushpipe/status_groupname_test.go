package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// The lines under status's table name a webhook receiver's group as it is
// spelt, the name the advice tells the operator to type: upper-cased,
// group Acme read ACME, which is no group (names are case-sensitive). A
// stage's group keeps the capitals of those lines' look.
func TestStatusNamesAGroupAsItIsSpelt(t *testing.T) {
	t.Parallel()
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("grpname", 2)
	// Groups no process has run: each "not running".
	for _, g := range []struct{ stream, group string }{
		{pipeline.StreamResults, "Acme"}, {pipeline.StreamResults, "webhook"}, {pipeline.StreamDedupe, "dedupe"},
	} {
		for _, stream := range keys.Streams(g.stream) {
			cmd := rdb.B().XgroupCreate().Key(stream).Group(g.group).Id("$").Mkstream().Build()
			if err := rdb.Do(t.Context(), cmd).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cli := parse(t, "status")
	rep, err := cli.Status.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cli.Status.print(&buf, rep, false)
	out := buf.String()
	for _, want := range []string{
		"\nWEBHOOK group Acme not running: no process reported",
		"Start `pushpipe webhook --group Acme`",
		"\nWEBHOOK not running: no process reported",
		"\nDEDUPE not running: no process reported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ACME") {
		t.Errorf("status names group Acme ACME:\n%s", out)
	}
}
