package api

import (
	"context"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// Retention of direct messages: each is a row of the campaigns table with
// its users, written by this API, and a chat app writes millions a day.
// Past Config.KeepMessages after its expiry, the row is purged: GET
// /v1/messages/{id} is then a 404, and the id may be used again.
const (
	purgeMessagesEvery  = time.Minute
	purgeMessagesRound  = 5000
	purgeMessagesRounds = 20
)

// PurgeMessages deletes the direct messages past Config.KeepMessages now
// and every minute until ctx ends; with KeepMessages 0 (keep them for ever)
// it returns at once. Every API process may run it: each round skips the
// rows another is deleting.
func (s *Server) PurgeMessages(ctx context.Context) error {
	keep := s.cfg.KeepMessages
	if keep <= 0 {
		return nil
	}
	return pipeline.Purger{What: "messages", Flag: "--keep-messages", Every: purgeMessagesEvery,
		Round: purgeMessagesRound, Rounds: purgeMessagesRounds,
		Purge: func(ctx context.Context, limit int) (int64, error) {
			return campaign.PurgeMessages(ctx, s.cfg.DB, time.Now().Add(-keep), limit)
		},
		Purged: s.metrics.messagesPurged, Log: s.cfg.Log}.Run(ctx)
}
