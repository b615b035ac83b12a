package fakeprovider

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Provider names as they appear in receipts.
const (
	ProviderAPNs = "apns"
	ProviderFCM  = "fcm"
)

// Summary counts what the provider saw. Every provider request is counted
// once: accepted, or in exactly one of the refusal counters.
type Summary struct {
	// Requests is every APNs and FCM request that reached the server.
	Requests uint64 `json:"requests"`
	Accepted uint64 `json:"accepted"`
	// Unique counts distinct (token, collapse id) pairs among the accepted.
	Unique uint64 `json:"unique"`
	// Duplicates are accepted requests for a (token, collapse id) pair that
	// had been accepted before: Accepted - Unique.
	Duplicates      uint64 `json:"duplicates"`
	RejectedOverTPS uint64 `json:"rejected_over_tps"`
	Unregistered    uint64 `json:"unregistered"`
	BadToken        uint64 `json:"bad_token"`
	// Errors is every other refusal: outage, random 500/503, forced
	// statuses, authentication and request validation.
	Errors uint64 `json:"errors"`
	// Connections is how many TCP connections clients opened.
	Connections uint64 `json:"connections"`
	// PeakRPS is the most requests that arrived within one Unix second.
	PeakRPS uint64 `json:"peak_rps"`
	// ByCollapseID counts accepted requests per collapse id ("" = none).
	ByCollapseID map[string]uint64 `json:"by_collapse_id"`
}

// Receipt is one accepted request. Headers and Body are the request's, in
// full receipts of a fake that keeps them (Options.KeepRequests).
type Receipt struct {
	Provider   string              `json:"provider"`
	Token      string              `json:"token"`
	CollapseID string              `json:"collapse_id"`
	AtMs       int64               `json:"at_ms"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Body       string              `json:"body,omitempty"`
}

// request is what a full receipt adds.
type request struct {
	headers map[string][]string
	body    string
}

const receiptChunk = 1 << 16

// receipts keeps every accepted request compactly: the (token, collapse id)
// key string is shared between the seen map and the list, and the list
// grows in fixed chunks so that millions of receipts never get copied on
// growth.
type receipts struct {
	base time.Time

	mu         sync.Mutex
	seen       map[string]uint32 // token "\x00" collapse id -> times accepted
	chunks     [][]receipt
	requests   [][]*request // parallel to chunks, when requests are kept
	accepted   uint64
	duplicates uint64
	byCollapse map[string]uint64
}

type receipt struct {
	key      string // token + "\x00" + collapse id
	tokenLen uint32
	atMs     uint32 // since base; a fake never runs 49 days
	provider uint8
}

func newReceipts(base time.Time) *receipts {
	return &receipts{base: base, seen: make(map[string]uint32), byCollapse: make(map[string]uint64)}
}

// add records an accepted request; req is its copy when requests are kept,
// else nil.
func (rs *receipts) add(provider uint8, token, collapseID string, now time.Time, req *request) {
	key := token + "\x00" + collapseID
	at := uint32(max(now.Sub(rs.base).Milliseconds(), 0))
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := rs.seen[key]
	rs.seen[key] = n + 1
	if n > 0 {
		rs.duplicates++
	}
	rs.accepted++
	rs.byCollapse[collapseID]++
	if len(rs.chunks) == 0 || len(rs.chunks[len(rs.chunks)-1]) == receiptChunk {
		rs.chunks = append(rs.chunks, make([]receipt, 0, receiptChunk))
	}
	last := &rs.chunks[len(rs.chunks)-1]
	*last = append(*last, receipt{key: key, tokenLen: uint32(len(token)), atMs: at, provider: provider})
	if req != nil {
		if len(rs.requests) < len(rs.chunks) {
			rs.requests = append(rs.requests, make([]*request, 0, receiptChunk))
		}
		rs.requests[len(rs.requests)-1] = append(rs.requests[len(rs.requests)-1], req)
	}
}

// snapshot returns the chunks (and the kept requests, nil when none are)
// as they are now. Receipts are never changed once written, so the caller
// may read them without the lock.
func (rs *receipts) snapshot() ([][]receipt, [][]*request) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([][]receipt(nil), rs.chunks...), append([][]*request(nil), rs.requests...)
}

// expand is receipt i of chunk c; a full one when reqs holds requests.
func (rs *receipts) expand(chunks [][]receipt, reqs [][]*request, c, i int) Receipt {
	r := chunks[c][i]
	out := Receipt{
		Provider:   providerName(r.provider),
		Token:      r.key[:r.tokenLen],
		CollapseID: r.key[r.tokenLen+1:],
		AtMs:       rs.base.UnixMilli() + int64(r.atMs),
	}
	if reqs != nil {
		out.Headers, out.Body = reqs[c][i].headers, reqs[c][i].body
	}
	return out
}

func providerName(p uint8) string {
	if p == providerFCM {
		return ProviderFCM
	}
	return ProviderAPNs
}

const (
	providerAPNs uint8 = iota
	providerFCM
)

// Summary returns the counters now.
func (s *Server) Summary() Summary {
	rs := s.rec
	rs.mu.Lock()
	sum := Summary{
		Accepted:     rs.accepted,
		Unique:       uint64(len(rs.seen)),
		Duplicates:   rs.duplicates,
		ByCollapseID: make(map[string]uint64, len(rs.byCollapse)),
	}
	for k, v := range rs.byCollapse {
		sum.ByCollapseID[k] = v
	}
	rs.mu.Unlock()
	sum.Requests = s.stats.requests.Load()
	sum.RejectedOverTPS = s.stats.overTPS.Load()
	sum.Unregistered = s.stats.unregistered.Load()
	sum.BadToken = s.stats.badToken.Load()
	sum.Errors = s.stats.errors.Load()
	sum.PeakRPS = s.window.peakPerSecond()
	sum.Connections = s.stats.connections.Load()
	return sum
}

// Receipts returns every accepted request in arrival order.
func (s *Server) Receipts() []Receipt { return s.receipts(false) }

// FullReceipts is Receipts with each request's headers and body; it needs
// Options.KeepRequests.
func (s *Server) FullReceipts() ([]Receipt, error) {
	if !s.opts.KeepRequests {
		return nil, errNotKept
	}
	return s.receipts(true), nil
}

var errNotKept = errors.New("fakeprovider: requests are not kept (Options.KeepRequests, --keep-requests)")

func (s *Server) receipts(full bool) []Receipt {
	chunks, reqs := s.rec.snapshot()
	if !full {
		reqs = nil
	}
	n := 0
	for _, chunk := range chunks {
		n += len(chunk)
	}
	out := make([]Receipt, 0, n)
	for c, chunk := range chunks {
		for i := range chunk {
			out = append(out, s.rec.expand(chunks, reqs, c, i))
		}
	}
	return out
}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Summary())
}

// handleReceipts streams NDJSON, one accepted request a line, without
// building the whole list in memory; with ?full=1 each line also has the
// request's headers and body.
func (s *Server) handleReceipts(w http.ResponseWriter, r *http.Request) {
	full := r.URL.Query().Get("full") == "1"
	if full && !s.opts.KeepRequests {
		http.Error(w, "full receipts need a fake started with --keep-requests", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	chunks, reqs := s.rec.snapshot()
	if !full {
		reqs = nil
	}
	var line []byte
	for c, chunk := range chunks {
		for i := range chunk {
			line = appendReceipt(line[:0], s.rec.expand(chunks, reqs, c, i))
			if _, err := bw.Write(line); err != nil {
				return // client went away
			}
		}
	}
	bw.Flush()
}

func appendReceipt(b []byte, r Receipt) []byte {
	b = append(b, `{"provider":`...)
	b = appendJSONString(b, r.Provider)
	b = append(b, `,"token":`...)
	b = appendJSONString(b, r.Token)
	b = append(b, `,"collapse_id":`...)
	b = appendJSONString(b, r.CollapseID)
	b = append(b, `,"at_ms":`...)
	b = strconv.AppendInt(b, r.AtMs, 10)
	if r.Headers != nil {
		// Rare (tests): encoding/json is fast enough.
		h, _ := json.Marshal(r.Headers)
		b = append(b, `,"headers":`...)
		b = append(b, h...)
		b = append(b, `,"body":`...)
		b = appendJSONString(b, r.Body)
	}
	return append(b, "}\n"...)
}

// appendJSONString writes plain printable ASCII directly (tokens and
// collapse ids nearly always are) and leaves anything else to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
