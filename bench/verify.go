package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// mark is a device's identity in the comparison: the first 12 bytes of the
// 128-bit FNV-1a of its token. It is the same digest deliver keeps as its
// sent mark (stages/deliver/devices.go markOf), so the null sink's marks
// compare directly; at 96 bits a collision among 10M tokens is below 1e-12.
type mark [12]byte

func markOf(token []byte) mark {
	h := fnv.New128a()
	h.Write(token)
	var sum [16]byte
	var m mark
	copy(m[:], h.Sum(sum[:0]))
	return m
}

func compareMarks(a, b mark) int { return bytes.Compare(a[:], b[:]) }

// recipientsSQL selects the campaign's ground truth: the active devices of
// everyone subscribed to one of the channels, each person once. For one
// channel it is the plain join the pipeline has to do anyway.
func recipientsSQL(app string, channels []string, cols string) string {
	lits := make([]string, len(channels))
	for i, c := range channels {
		lits[i] = literal(c)
	}
	if len(channels) == 1 {
		return fmt.Sprintf(`SELECT %s FROM subscriptions s JOIN devices d ON d.user_id = s.user_id
WHERE s.channel = %s AND d.app = %s AND d.state = 0`, cols, lits[0], literal(app))
	}
	return fmt.Sprintf(`SELECT %s FROM (SELECT DISTINCT user_id FROM subscriptions WHERE channel IN (%s)) s
JOIN devices d ON d.user_id = s.user_id WHERE d.app = %s AND d.state = 0`, cols, strings.Join(lits, ", "), literal(app))
}

// literal quotes a string as an SQL literal (COPY takes no parameters).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Truth is what the campaign must reach.
type Truth struct {
	Recipients int64 // people subscribed to any of the channels
	Devices    int64 // their active devices
}

// countTruth counts people and devices of the campaign.
func countTruth(ctx context.Context, conn *pgx.Conn, app string, channels []string) (Truth, error) {
	var t Truth
	err := conn.QueryRow(ctx, `SELECT count(DISTINCT user_id) FROM subscriptions WHERE channel = ANY($1)`, channels).Scan(&t.Recipients)
	if err != nil {
		return t, fmt.Errorf("count recipients: %w", err)
	}
	err = conn.QueryRow(ctx, "SELECT count(*) FROM ("+recipientsSQL(app, channels, "d.token")+") x").Scan(&t.Devices)
	if err != nil {
		return t, fmt.Errorf("count devices: %w", err)
	}
	return t, nil
}

// measureFloor times one COPY of the recipients' tokens to io.Discard: the
// read the pipeline cannot avoid, done the fastest way PostgreSQL can.
func measureFloor(ctx context.Context, conn *pgx.Conn, app string, channels []string) (time.Duration, error) {
	start := time.Now()
	_, err := conn.PgConn().CopyTo(ctx, io.Discard, "COPY ("+recipientsSQL(app, channels, "d.token")+") TO STDOUT")
	if err != nil {
		return 0, fmt.Errorf("floor copy: %w", err)
	}
	return time.Since(start), nil
}

// idMark is a device's identity by its id: what deliver's sent marks hold
// (a bit per device id). Big-endian, so marks sort as the ids do.
func idMark(id int64) mark {
	var m mark
	binary.BigEndian.PutUint64(m[:8], uint64(id))
	return m
}

// expectedMarks reads the recipients' devices and returns their marks,
// sorted: token digests (markOf, what the fake provider's receipts give), or
// with byID the device ids (idMark, what the null sink's sent marks give).
func expectedMarks(ctx context.Context, conn *pgx.Conn, app string, channels []string, sizeHint int64, byID bool) ([]mark, error) {
	pr, pw := io.Pipe()
	out := make([]mark, 0, sizeHint)
	errc := make(chan error, 1)
	col := "d.token"
	if byID {
		col = "d.id"
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var err error
		for sc.Scan() {
			if !byID {
				out = append(out, markOf(sc.Bytes()))
				continue
			}
			id, perr := strconv.ParseInt(sc.Text(), 10, 64)
			if perr != nil {
				err = fmt.Errorf("device id %q: %w", sc.Text(), perr)
				break
			}
			out = append(out, idMark(id))
		}
		if err == nil {
			err = sc.Err()
		}
		pr.CloseWithError(err)
		errc <- err
	}()
	_, err := conn.PgConn().CopyTo(ctx, pw, "COPY ("+recipientsSQL(app, channels, col)+") TO STDOUT")
	pw.CloseWithError(err)
	if serr := <-errc; err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("read expected devices: %w", err)
	}
	slices.SortFunc(out, compareMarks)
	return out, nil
}

// Verdict compares what was delivered with the ground truth.
type Verdict struct {
	Delivered  int64 `json:"delivered"`  // deliveries observed (fake: accepted requests; null: sent marks)
	Unique     int64 `json:"unique"`     // distinct devices among them
	Missing    int64 `json:"missing"`    // expected devices never delivered
	Unexpected int64 `json:"unexpected"` // delivered devices that were not expected
	// ProviderDuplicates are deliveries beyond the first of a device.
	ProviderDuplicates int64 `json:"provider_duplicates"`
	// DedupeDuplicates are people forwarded to deliver more than once
	// (guarantee 2), read back from the retained deliver stream.
	DedupeDuplicates int64 `json:"dedupe_duplicates"`
	DeliverEntries   int64 `json:"deliver_users"` // people in the deliver stream for the campaign
}

// compare counts missing, unexpected and repeated marks; both sorted.
func compare(expected, got []mark) (v Verdict) {
	v.Delivered = int64(len(got))
	i, j := 0, 0
	for i < len(expected) || j < len(got) {
		switch {
		case j == len(got) || (i < len(expected) && compareMarks(expected[i], got[j]) < 0):
			v.Missing++
			i++
		case i == len(expected) || compareMarks(expected[i], got[j]) > 0:
			v.Unique++
			v.Unexpected++
			j = skipSame(got, j)
		default:
			v.Unique++
			i++
			j = skipSame(got, j)
		}
	}
	v.ProviderDuplicates = v.Delivered - v.Unique
	return v
}

// skipSame returns the index after the run of marks equal to got[j],
// counting the run once.
func skipSame(got []mark, j int) int {
	k := j + 1
	for k < len(got) && got[k] == got[j] {
		k++
	}
	return k
}

// receiptMarks reads the fake provider's receipts of one collapse id (the
// campaign's) and returns the marks of their tokens, sorted, repeats kept.
func receiptMarks(ctx context.Context, client *http.Client, base, collapseID string) ([]mark, error) {
	var out []mark
	err := eachReceipt(ctx, client, base, collapseID, func(token string, _ []byte) error {
		out = append(out, markOf([]byte(token)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareMarks)
	return out, nil
}

// writeRepeats writes the receipts (NDJSON, as the fake serves them) of the
// tokens that got more than one request for the campaign to file, when
// there are any: when and through which provider each repeat arrived tells
// a crash's repeats (within one in-flight window) from anything else.
func writeRepeats(ctx context.Context, client *http.Client, base, collapseID string, got []mark, file string) error {
	repeated := map[mark]bool{}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			repeated[got[i]] = true
		}
	}
	if len(repeated) == 0 {
		return nil
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("repeats: %w", err)
	}
	defer f.Close()
	err = eachReceipt(ctx, client, base, collapseID, func(token string, line []byte) error {
		if repeated[markOf([]byte(token))] {
			if _, err := fmt.Fprintf(f, "%s\n", line); err != nil {
				return fmt.Errorf("repeats: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return f.Close()
}

// eachReceipt calls f with the token and the NDJSON line of each of the
// fake provider's receipts of one collapse id.
func eachReceipt(ctx context.Context, client *http.Client, base, collapseID string, f func(token string, line []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_receipts", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("receipts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("receipts: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var r struct {
		Token      string `json:"token"`
		CollapseID string `json:"collapse_id"`
	}
	for sc.Scan() {
		r.Token, r.CollapseID = "", ""
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("receipt %q: %w", sc.Text(), err)
		}
		if r.CollapseID == collapseID {
			if err := f(r.Token, sc.Bytes()); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("receipts: %w", err)
	}
	return nil
}

// sentMarks reads deliver's sent marks of the campaign from every partition
// (the null sink's only durable record of what it "sent"): bitmaps of 2^16
// device ids per key (stages/deliver/bitmaps.go), read for every chunk up to
// maxID's. A bitmap holds each device once, so they cannot show a repeated
// send.
func sentMarks(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, campaign string, maxID int64) ([]mark, error) {
	const chunkBits = pipeline.MarkChunkBits
	var (
		cmds   rueidis.Commands
		chunks []int64
	)
	for p := range keys.Partitions {
		for c := int64(0); c <= maxID>>chunkBits; c++ {
			cmds = append(cmds, rdb.B().Get().Key(keys.SentChunk(p, campaign, c)).Build())
			chunks = append(chunks, c)
		}
	}
	var out []mark
	for i, res := range rdb.DoMulti(ctx, cmds...) {
		b, err := res.AsBytes()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sent marks: %w", err)
		}
		for j, x := range b {
			for bit := range 8 {
				if x&(0x80>>bit) != 0 {
					out = append(out, idMark(chunks[i]<<chunkBits+int64(j*8+bit)))
				}
			}
		}
	}
	slices.SortFunc(out, compareMarks)
	return out, nil
}

// maxDeviceID is the highest device id, to know which sent-mark chunks exist.
func maxDeviceID(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	var id int64
	if err := db.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM devices`).Scan(&id); err != nil {
		return 0, fmt.Errorf("max device id: %w", err)
	}
	return id, nil
}

// deliverUsers reads every deliver entry of the campaign still retained and
// counts people and repeats: dedupe must forward each person exactly once.
func deliverUsers(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, campaign string) (users, repeats int64, err error) {
	var ids []int64
	for _, stream := range keys.Streams(pipeline.StreamDeliver) {
		start := "-"
		for {
			entries, err := rdb.Do(ctx, rdb.B().Xrange().Key(stream).Start(start).End("+").Count(2000).Build()).AsXRange()
			if err != nil {
				return 0, 0, fmt.Errorf("read %s: %w", stream, err)
			}
			for _, e := range entries {
				if e.FieldValues[pipeline.FieldCampaign] != campaign || e.FieldValues[pipeline.FieldForce] == "1" {
					continue
				}
				if ids, err = pipeline.AppendDecodedIDs(ids, e.FieldValues[pipeline.FieldUsers]); err != nil {
					return 0, 0, fmt.Errorf("entry %s of %s: %w", e.ID, stream, err)
				}
			}
			if len(entries) < 2000 {
				break
			}
			start = "(" + entries[len(entries)-1].ID
		}
	}
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			repeats++
		}
	}
	return int64(len(ids)) - repeats, repeats, nil
}

// fakeClient trusts the fake provider's self-signed certificate.
func fakeClient(certFile string) (*http.Client, error) {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("fake provider certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("fake provider certificate %s: no PEM certificate", certFile)
	}
	return &http.Client{
		Timeout:   5 * time.Minute,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
	}, nil
}
