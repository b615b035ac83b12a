package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// DefaultMaxBodyBytes is the device batch's body cap: a full batch of
// MaxDeviceBatch devices with every field at its limit takes 14.3 MB as
// clients write it, indented and with a non-ASCII app id escaped as \uXXXX
// (Python's json.dumps(indent=2)); a real one takes 2–4 MB. Below that, a
// valid batch would be refused as too large.
const DefaultMaxBodyBytes = 16 << 20

// DefaultMaxBodyMemory bounds the request bodies held at once: 16 batches
// of the largest kind, 64 real ones, or hundreds of thousands of single
// registrations. Decoding a body holds about as much again, so the API's request memory stays within a
// small multiple of it whatever clients send.
const DefaultMaxBodyMemory = 256 << 20

// readBody reads r's whole body, at most limit bytes, charged to the body
// memory budget. It answers the request itself and returns ok=false when the
// body is too large (413, before reading when Content-Length says so), the
// budget is spent (503 + Retry-After, nothing read), the client sends too
// slowly (408) or the connection fails mid-body (400). release gives the
// budget back once the request is done with the body and what was decoded
// from it.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64, lists bool) (body []byte, release func(), ok bool) {
	if r.ContentLength > limit {
		tooLarge(w, limit, lists)
		return nil, nil, false
	}
	size := limit // a body without Content-Length may be as long as the cap
	if r.ContentLength >= 0 {
		size = r.ContentLength
	}
	if !s.bodies.TryAcquire(size) {
		// Nothing of the body was read. Answering on this connection would
		// first read (and drop) up to 256 KiB of it, net/http's way of
		// keeping the connection: the memory and time this refusal saves,
		// and a client that sends its body after the answer's first bytes,
		// or slowly, would wait for the read timeout. Closing answers at once.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the API holds as many request bodies as it may at once; nothing was accepted, retry in 1 s")
		return nil, nil, false
	}
	release = func() { s.bodies.Release(size) }
	// MaxBytesReader also closes the connection after a 413, so the rest of
	// an oversized body is never read.
	rd := http.MaxBytesReader(w, r.Body, limit)
	var err error
	if r.ContentLength >= 0 {
		body = make([]byte, size) // what the budget counts, not twice that
		_, err = io.ReadFull(rd, body)
	} else {
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rd)
		body = buf.Bytes()
	}
	if err != nil {
		release()
		bodyReadError(w, err, limit, lists)
		return nil, nil, false
	}
	return body, release, true
}

// bodyReadError answers a body that could not be read. The error's text is
// never shown: it holds the connection's socket addresses.
func bodyReadError(w http.ResponseWriter, err error, limit int64, lists bool) {
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooBig):
		tooLarge(w, limit, lists)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		writeError(w, http.StatusRequestTimeout, "the request body did not arrive within the server's read timeout; send it again, faster or in smaller parts")
	default:
		writeError(w, http.StatusBadRequest, "the request body could not be read: the connection failed or closed before the body's end; send it again")
	}
}

// tooLarge answers a body over its route's cap. Only a route that takes a
// list (lists) can be sent in parts; every other cap is above the largest
// valid request of its route, so the body has a field far too long, and
// "split it" would have a client cut one campaign into several, each
// reaching the people of several channels again.
func tooLarge(w http.ResponseWriter, limit int64, lists bool) {
	advice := "split it"
	if !lists {
		advice = "more than any valid request to this route takes, so some field is far too long: shorten it"
	}
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes; %s", limit, advice))
}

// jsonContentType reports whether r declares its body as JSON: media type
// application/json, with no charset or UTF-8 (RFC 8259 §8.1: JSON between
// systems is UTF-8). A body of another type (a form, text/plain) was not
// written for this API: refusing it says so rather than guessing.
func jsonContentType(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" { // what nearly every client sends: no parsing
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// identityEncoding reports whether r's body is sent as is: no
// Content-Encoding, or "identity". The API does not decompress bodies (their
// caps and the memory budget count bytes as sent); a gzip body read as JSON
// would be refused as "bad JSON" about its first byte, and one in another
// coding that happened to parse would be taken for what it is not.
func identityEncoding(r *http.Request) bool {
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

// quoteHeader quotes a header value for an error message, clipped.
func quoteHeader(v string) string {
	if v == "" {
		return "none"
	}
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return strconv.Quote(v)
}
