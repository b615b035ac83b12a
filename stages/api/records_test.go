package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A record's warning names its id under a field of its own: a message's id
// under "message" was a second "message" key beside zerolog's text, and a
// JSON reader kept only one of them.
func TestRecordLogNamesTheID(t *testing.T) {
	db, rdb := databaseDown(t)
	tests := []struct {
		path, field string
	}{
		{"/v1/messages/m1", `"message_id":"m1"`},
		{"/v1/campaigns/c1", `"campaign":"c1"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var logs pipelinetest.Logs
			srv := httptest.NewServer(New(Config{Redis: rdb, DB: db, Keys: pipeline.NewKeys("logid", 16),
				Log: zerolog.New(&logs), Auth: Auth{Insecure: true}}))
			t.Cleanup(srv.Close)
			a := &deviceAPI{t: t, url: srv.URL}
			if r := a.do("GET", tt.path, "", ""); r.status != http.StatusServiceUnavailable {
				t.Fatalf("GET %s with PostgreSQL down: %d %s", tt.path, r.status, r.body)
			}
			line := strings.TrimSpace(logs.String())
			if strings.Count(line, `"message":`) != 1 || !strings.Contains(line, tt.field) {
				t.Fatalf("log %s: want one \"message\" key and %s", line, tt.field)
			}
		})
	}
}
