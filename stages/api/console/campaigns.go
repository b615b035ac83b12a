package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver"
)

// Campaigns is what the console reads and does with campaigns. It is the
// seam where the shared campaign model plugs in: the console never reads a
// campaign's keys or rows itself.
//
// Rules: List and Messages are newest first, with the next page's cursor
// ("" after the last page); Get and Message of a campaign or message Redis
// holds, while PostgreSQL is down, are its partial report (its
// RecordUnavailable set: campaign.ErrPartial) and no content, without an
// error; Get, Message and Cancel of an unknown id wrap
// campaign.ErrNotFound (Cancel of a direct message's, campaign.ErrIsMessage);
// Cancel of a finished campaign wraps campaign.ErrFinished; SetRate
// follows campaign.SetRate (its errors as Cancel's, and a
// *campaign.ValidationError for a rate out of bounds); Create follows
// campaign.Create (idempotent by id, a *campaign.ValidationError for a
// request that can never succeed, an audience of nobody included unless
// allowEmpty, as POST /v1/campaigns; the caller's own checks as more
// admits, so that a retry is answered from the record before them);
// Failures is most devices first, empty
// when none failed; Records leaves out the ids it has no record of.
type Campaigns interface {
	List(ctx context.Context, before string, limit int) (page []Summary, next string, err error)
	Get(ctx context.Context, id string) (Summary, error)
	Create(ctx context.Context, c campaign.Campaign, sendAt time.Time, allowEmpty bool, admit ...campaign.Admit) (campaign.Campaign, error)
	Cancel(ctx context.Context, id string) error
	SetRate(ctx context.Context, id string, rate int) error
	Failures(ctx context.Context, id string) ([]Reason, error)
	Messages(ctx context.Context, before string, limit int) (page []campaign.MessageSummary, next string, err error)
	Message(ctx context.Context, id string) (campaign.MessageSummary, error)
	// Records are the records of the campaigns and messages of ids that
	// exist (their Kind says which), in one read, without progress.
	Records(ctx context.Context, ids []string) (map[string]campaign.Campaign, error)
}

// Summary is a campaign and its progress.
type Summary struct {
	Campaign campaign.Campaign
	Progress campaign.Report
}

// Name is what the console calls a campaign: its title, else its body (a
// campaign needs one of them, unless silent), cut as long input is
// (devices.Echo), else its id. The list named a campaign by its title and
// its page by its id, and an operator did not find the one on the other.
func (s Summary) Name() string {
	return devices.Echo(cmp.Or(s.Campaign.Title, s.Campaign.Body, s.Campaign.ID))
}

// Cancelable is whether a cancel of the campaign can succeed: it is not
// final, and its record was read (while PostgreSQL is down a cancel is
// refused, naming PostgreSQL, and stops nothing).
func (s Summary) Cancelable() bool {
	return !campaign.Final(s.Progress.State) && s.Progress.RecordUnavailable == ""
}

// Reason is how many devices of a campaign failed for one reason.
type Reason struct {
	Reason string
	Count  int64
}

// NewCampaigns is Campaigns over pipeline/campaign as it is today.
func NewCampaigns(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) Campaigns {
	return sharedCampaigns{rdb: rdb, db: db, keys: keys}
}

type sharedCampaigns struct {
	rdb  rueidis.Client
	db   *pgxpool.Pool
	keys pipeline.Keys
}

func (s sharedCampaigns) List(ctx context.Context, before string, limit int) ([]Summary, string, error) {
	if s.db == nil {
		return nil, "", errNoDB
	}
	reps, next, err := campaign.List(ctx, s.rdb, s.db, s.keys, campaign.ListQuery{Before: before, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	// The list's reports carry no content: the titles are the rows', read
	// in one query for the page (the list refreshes every second; a query
	// per row made a page of 20 cost 21 queries a refresh).
	ids := make([]string, len(reps))
	for i, rep := range reps {
		ids[i] = rep.ID
	}
	cs, err := campaign.LoadAll(ctx, s.db, ids)
	if err != nil {
		return nil, "", err
	}
	out := make([]Summary, 0, len(reps))
	for _, rep := range reps {
		c, ok := cs[rep.ID]
		if !ok {
			return nil, "", fmt.Errorf("campaign %q: %w", rep.ID, campaign.ErrNotFound)
		}
		out = append(out, Summary{Campaign: c, Progress: rep})
	}
	return out, next, nil
}

func (s sharedCampaigns) Get(ctx context.Context, id string) (Summary, error) {
	if s.db == nil {
		return Summary{}, errNoDB
	}
	if err := campaign.ValidateID(id); err != nil {
		return Summary{}, fmt.Errorf("%w: %w", campaign.ErrNotFound, err)
	}
	// Progress first: while PostgreSQL is down it still reports, from
	// Redis, a campaign going out, which the record (Load) cannot.
	rep, err := campaign.Progress(ctx, s.rdb, s.db, s.keys, id)
	if errors.Is(err, campaign.ErrPartial) {
		return Summary{Campaign: campaign.Campaign{ID: id}, Progress: rep}, nil
	}
	if err != nil {
		return Summary{}, err
	}
	c, err := campaign.Load(ctx, s.db, id)
	return Summary{Campaign: c, Progress: rep}, err
}

// Create is what POST /v1/campaigns does: the payload checked as each
// provider renders it, the audience checked (campaign.CheckAudience) unless
// allowEmpty, then stored and queued (or scheduled, for a sendAt ahead).
// The checks are a new campaign's only (campaign.Admit): the form sent
// again under its id is answered from the record, whatever they would
// answer now that a one-off channel was sent and emptied.
func (s sharedCampaigns) Create(ctx context.Context, c campaign.Campaign, sendAt time.Time, allowEmpty bool, admit ...campaign.Admit) (campaign.Campaign, error) {
	if s.db == nil {
		return c, errNoDB
	}
	c.SendAt = sendAt
	admit = append(admit, func(ctx context.Context, c campaign.Campaign) error { return deliver.CheckCampaign(ctx, s.db, c) })
	if !allowEmpty {
		// A wrong app id or "sport" for "sports" would otherwise be
		// created, sent to nobody and reported done 0/0 as if it worked.
		admit = append(admit, func(ctx context.Context, c campaign.Campaign) error {
			err := campaign.CheckAudience(ctx, s.db, c)
			var verr *campaign.ValidationError
			if errors.As(err, &verr) {
				// The API's way out is a JSON member; the form's is its box.
				return &campaign.ValidationError{Msg: strings.Replace(verr.Msg, campaign.AllowEmptyAdvice, `tick "`+allowEmptyLabel+`"`, 1)}
			}
			return err
		})
	}
	c, _, err := campaign.Create(ctx, s.rdb, s.db, s.keys, c, admit...)
	return c, err
}

func (s sharedCampaigns) Cancel(ctx context.Context, id string) error {
	if s.db == nil {
		return errNoDB
	}
	_, err := campaign.Cancel(ctx, s.rdb, s.db, s.keys, id)
	return err
}

func (s sharedCampaigns) SetRate(ctx context.Context, id string, rate int) error {
	if s.db == nil {
		return errNoDB
	}
	_, err := campaign.SetRate(ctx, s.rdb, s.db, s.keys, id, rate)
	return err
}

// Failures are the campaign's failure reasons (campaign.Reasons), most
// devices first, then by reason so equal counts keep their order between
// refreshes.
func (s sharedCampaigns) Failures(ctx context.Context, id string) ([]Reason, error) {
	m, err := campaign.Reasons(ctx, s.rdb, s.keys, id)
	if err != nil {
		return nil, err
	}
	out := make([]Reason, 0, len(m))
	for reason, n := range m {
		out = append(out, Reason{Reason: reason, Count: n})
	}
	slices.SortFunc(out, func(a, b Reason) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Reason, b.Reason))
	})
	return out, nil
}

func (s sharedCampaigns) Messages(ctx context.Context, before string, limit int) ([]campaign.MessageSummary, string, error) {
	if s.db == nil {
		return nil, "", errNoDB
	}
	return campaign.ListMessages(ctx, s.rdb, s.db, s.keys, before, limit)
}

// Message is a message's report (GET /v1/messages/{id}'s) and its content.
func (s sharedCampaigns) Message(ctx context.Context, id string) (campaign.MessageSummary, error) {
	if s.db == nil {
		return campaign.MessageSummary{}, errNoDB
	}
	if err := campaign.ValidateID(id); err != nil {
		return campaign.MessageSummary{}, fmt.Errorf("%w: %w", campaign.ErrNotFound, err)
	}
	rep, err := campaign.MessageProgress(ctx, s.rdb, s.db, s.keys, id)
	if errors.Is(err, campaign.ErrPartial) {
		return campaign.MessageSummary{Report: rep}, nil // as Get's
	}
	if err != nil {
		return campaign.MessageSummary{}, err
	}
	c, err := campaign.Load(ctx, s.db, id)
	return campaign.MessageSummary{Report: rep, App: c.App, Title: c.Title, Body: c.Body, Priority: c.Priority, CreatedAt: c.CreatedAt}, err
}

func (s sharedCampaigns) Records(ctx context.Context, ids []string) (map[string]campaign.Campaign, error) {
	if s.db == nil {
		return nil, errNoDB
	}
	return campaign.LoadAll(ctx, s.db, ids)
}

// allowEmptyLabel is the new-campaign form's box for allow_empty.
const allowEmptyLabel = "Create it even if nobody would receive it"

var errNoDB = errors.New("PostgreSQL is not configured for this API")
