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

// A stage with an express lane scales on it too: gen.sh's input lists its
// express keys before its bulk ones, and a ScaledObject without a trigger
// for each of them fails the lint.
func TestExpressLanesScale(t *testing.T) {
	var out bytes.Buffer
	if err := printStages(&out, []string{"-partitions", "2", "-prefix", "x"}); err != nil {
		t.Fatal(err)
	}
	line := "deliver yes x:{p0}:deliver-express x:{p1}:deliver-express x:{p0}:deliver x:{p1}:deliver"
	if !slices.Contains(strings.Split(out.String(), "\n"), line) {
		t.Errorf("-stages does not list %q:\n%s", line, out.String())
	}

	m, errs := load("../k8s")
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	for _, s := range m.scaled {
		if s.Spec.ScaleTargetRef.Name != "pushpipe-deliver" {
			continue
		}
		kept := s.Spec.Triggers[:0]
		for _, tr := range s.Spec.Triggers {
			if !strings.HasSuffix(tr.Metadata["stream"], ":deliver-express") {
				kept = append(kept, tr)
			}
		}
		s.Spec.Triggers = kept
	}
	var got []string
	for _, err := range m.check() {
		got = append(got, err.Error())
	}
	if want := "ScaledObject pushpipe-deliver: no trigger for partition key pp:{p0}:deliver-express"; !slices.Contains(got, want) {
		t.Errorf("lint without deliver's express triggers says %q, want it to say %q", got, want)
	}
}
