package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// The manifests in deploy/k8s pass the lint as committed.
func TestManifests(t *testing.T) {
	m, errs := load("../k8s")
	if errs = append(errs, m.check()...); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}

// The lint covers every row of the stage table: a row the manifests do not
// deploy is reported, unless it is Optional; and gen.sh's input (-stages)
// lists it, with its stream keys as pipeline.Keys names them.
func TestEveryRowCovered(t *testing.T) {
	saved := pipeline.Stages
	t.Cleanup(func() { pipeline.Stages = saved })
	tests := []struct {
		name     string
		optional bool
		want     []string // errors the lint must report
	}{
		{"lintprobe", false, []string{"no Deployment pushpipe-lintprobe", "no Deployment pushpipe-lintprobe"}},
		{"lintprobe", true, nil},
	}
	for _, tt := range tests {
		pipeline.Stages = append(slices.Clip(saved), pipeline.StageDef{Name: tt.name, Stream: "lintprobes", Optional: tt.optional})
		m, errs := load("../k8s")
		errs = append(errs, m.check()...)
		var got []string
		for _, err := range errs {
			got = append(got, err.Error())
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("optional %v: lint says %q, want %q", tt.optional, got, tt.want)
		}

		var out bytes.Buffer
		if err := printStages(&out, []string{"-partitions", "2", "-prefix", "x"}); err != nil {
			t.Fatal(err)
		}
		line := "lintprobe no x:{p0}:lintprobes x:{p1}:lintprobes"
		if listed := slices.Contains(strings.Split(out.String(), "\n"), line); listed == tt.optional {
			t.Errorf("optional %v: -stages listed it: %v\n%s", tt.optional, listed, out.String())
		}
	}
}
