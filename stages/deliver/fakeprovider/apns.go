package fakeprovider

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// apnsMaxPayload is Apple's limit for alert notifications.
const apnsMaxPayload = 4096

// handleAPNs answers POST /3/device/{token} like APNs: 200 with an apns-id,
// or a status and {"reason": ...}.
func (s *Server) handleAPNs(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	id := r.Header.Get("apns-id")
	if id == "" {
		id = s.newUUID()
	}
	w.Header().Set("apns-id", id)
	body, tooLarge, err := readBody(r, apnsMaxPayload)
	if err != nil {
		return // the client went away mid-body
	}

	ref, after, at := s.admit(r)
	switch ref {
	case refusedOverTPS:
		s.stats.overTPS.Add(1)
		writeAPNs(w, http.StatusTooManyRequests, "TooManyRequests", 0, after)
		return
	case refusedOutage:
		s.stats.errors.Add(1)
		writeAPNs(w, http.StatusServiceUnavailable, "ServiceUnavailable", 0, after)
		return
	case refusedInternal:
		s.stats.errors.Add(1)
		writeAPNs(w, http.StatusInternalServerError, "InternalServerError", 0, 0)
		return
	case refusedUnavailable:
		s.stats.errors.Add(1)
		writeAPNs(w, http.StatusServiceUnavailable, "ServiceUnavailable", 0, 0)
		return
	}
	if status, reason := s.apnsRefusal(r, token, body, tooLarge); status != 0 {
		s.stats.errors.Add(1)
		writeAPNs(w, status, reason, 0, 0)
		return
	}
	switch s.fate(token) {
	case fateUnregistered:
		s.stats.unregistered.Add(1)
		writeAPNs(w, http.StatusGone, "Unregistered", time.Now().UnixMilli(), 0)
		return
	case fateBadToken:
		s.stats.badToken.Add(1)
		writeAPNs(w, http.StatusBadRequest, "BadDeviceToken", 0, 0)
		return
	}
	s.rec.add(providerAPNs, token, r.Header.Get("apns-collapse-id"), at, s.keep(r, body))
	w.WriteHeader(http.StatusOK)
}

// apnsRefusal checks authentication, the test hook and the request the way
// APNs does; status 0 means the request is fine.
func (s *Server) apnsRefusal(r *http.Request, token string, body []byte, tooLarge bool) (status int, reason string) {
	// Token auth sends a JWT; certificate auth shows a client certificate.
	// The JWT's signature is not checked: the fake has no team keys.
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		auth := r.Header.Get("authorization")
		bearer, ok := cutPrefixFold(auth, "bearer ")
		switch {
		case auth == "":
			return http.StatusForbidden, "MissingProviderToken"
		case !ok || strings.Count(bearer, ".") != 2:
			return http.StatusForbidden, "InvalidProviderToken"
		case len(s.opts.APNsKeys) > 0 && !slices.Contains(s.opts.APNsKeys, jwtTeamKey(bearer)):
			return http.StatusForbidden, "InvalidProviderToken"
		}
	}
	if s.opts.ForceStatus != nil {
		if status, reason := s.opts.ForceStatus(token); status != 0 {
			return status, reason
		}
	}
	switch p := r.Header.Get("apns-priority"); {
	case r.Header.Get("apns-topic") == "":
		return http.StatusBadRequest, "MissingTopic"
	case len(r.Header.Get("apns-collapse-id")) > 64:
		return http.StatusBadRequest, "BadCollapseId"
	case p != "" && p != "10" && p != "5" && p != "1":
		return http.StatusBadRequest, "BadPriority"
	case tooLarge:
		return http.StatusRequestEntityTooLarge, "PayloadTooLarge"
	case len(body) == 0 || !json.Valid(body):
		return http.StatusBadRequest, "PayloadEmpty"
	}
	return 0, ""
}

// jwtTeamKey is "iss/kid" of a provider token (team id / key id), or ""
// when it cannot be read.
func jwtTeamKey(jwt string) string {
	parts := strings.SplitN(jwt, ".", 3)
	var h struct {
		Kid string `json:"kid"`
	}
	var c struct {
		Iss string `json:"iss"`
	}
	for i, v := range []any{&h, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			return ""
		}
	}
	return c.Iss + "/" + h.Kid
}

func writeAPNs(w http.ResponseWriter, status int, reason string, timestampMs int64, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if retryAfter > 0 {
		h.Set("Retry-After", retryAfterSeconds(retryAfter))
	}
	w.WriteHeader(status)
	body := struct {
		Reason    string `json:"reason"`
		Timestamp int64  `json:"timestamp,omitempty"`
	}{reason, timestampMs}
	json.NewEncoder(w).Encode(body)
}

// readBody reads at most limit bytes; tooLarge reports a longer body (which
// is then not read further). err is set only when reading failed.
func readBody(r *http.Request, limit int64) (body []byte, tooLarge bool, err error) {
	body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	if int64(len(body)) > limit {
		return nil, true, nil
	}
	return body, false, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// newUUID makes a unique, UUID-shaped id from a counter: ids only need to be
// unique within one fake. It is "%08x-0000-4000-8000-%012x" of the counter's
// top 16 bits and its low 48, written by hand: every APNs request without
// an apns-id (apns2 sends none) makes one, and fmt was a few percent of
// the fake's CPU.
func (s *Server) newUUID() string {
	n := s.nextID.Add(1)
	b := make([]byte, 0, 36)
	b = appendHex(b, n>>48, 8)
	b = append(b, "-0000-4000-8000-"...)
	b = appendHex(b, n&0xffffffffffff, 12)
	return string(b)
}

// appendHex appends v in lower-case hex, zero-padded to width digits.
func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}
