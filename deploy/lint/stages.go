package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline"
)

// printStages writes, for deploy/k8s/gen.sh, a line per stage a deployment
// runs (every row of pipeline.Stages but the Optional ones, which run only
// where an operator configures them): its name, whether it needs
// PostgreSQL (yes/no) and the keys of its input stream, as pipeline.Keys
// names them. The manifests thus list the stages, and name their keys, the
// way the binary does.
//
//	go run . -stages -partitions 16 -prefix pp
func printStages(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("lint -stages", flag.ContinueOnError)
	partitions := fs.Int("partitions", pipeline.DefaultPartitions, "partitions per stream")
	prefix := fs.String("prefix", "pp", "Redis key prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	keys := pipeline.NewKeys(*prefix, *partitions)
	for _, s := range pipeline.Stages {
		if s.Optional {
			continue
		}
		db := "no"
		if s.DB {
			db = "yes"
		}
		var streams []string
		for _, in := range s.Inputs() {
			streams = append(streams, keys.Streams(in)...)
		}
		if _, err := fmt.Fprintln(w, s.Name, db, strings.Join(streams, " ")); err != nil {
			return err
		}
	}
	return nil
}
