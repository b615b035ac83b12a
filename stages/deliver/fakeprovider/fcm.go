package fakeprovider

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

const (
	// fcmMaxRequest bounds what the fake reads; fcmMaxPayload is FCM's limit
	// on a message's notification plus data.
	fcmMaxRequest = 64 << 10
	fcmMaxPayload = 4096

	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
)

// fcmRequest is the part of an FCM v1 send request the fake looks at.
type fcmRequest struct {
	ValidateOnly bool `json:"validate_only"`
	Message      struct {
		Token        string            `json:"token"`
		Topic        string            `json:"topic"`
		Condition    string            `json:"condition"`
		Data         map[string]string `json:"data"`
		Notification *struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Android *struct {
			CollapseKey string `json:"collapse_key"`
		} `json:"android"`
		APNS *struct {
			Headers map[string]string `json:"headers"`
		} `json:"apns"`
	} `json:"message"`
}

func (m *fcmRequest) collapseID() string {
	if a := m.Message.Android; a != nil && a.CollapseKey != "" {
		return a.CollapseKey
	}
	if a := m.Message.APNS; a != nil {
		return a.Headers["apns-collapse-id"]
	}
	return ""
}

// fcmFailure is one FCM error answer. The details are what firebase's
// messaging.IsXxx helpers and our classifier read: an FcmError errorCode, and
// for payload problems a google.rpc.BadRequest field violation.
type fcmFailure struct {
	status    int
	message   string
	errorCode string // FcmError errorCode; "" for none
	field     string // BadRequest field violation; "" for none
}

// handleFCM answers POST /v1/projects/{project}/messages:send like FCM v1.
func (s *Server) handleFCM(w http.ResponseWriter, r *http.Request) {
	body, tooLarge, err := readBody(r, fcmMaxRequest)
	if err != nil {
		return // the client went away mid-body
	}
	ref, after, at := s.admit(r)
	switch ref {
	case refusedOverTPS:
		s.stats.overTPS.Add(1)
		writeFCM(w, fcmFailure{http.StatusTooManyRequests, "Quota exceeded for quota metric 'Send requests'.", "QUOTA_EXCEEDED", ""}, after)
		return
	case refusedOutage, refusedUnavailable:
		s.stats.errors.Add(1)
		writeFCM(w, fcmFailure{http.StatusServiceUnavailable, "The service is currently unavailable.", "UNAVAILABLE", ""}, after)
		return
	case refusedInternal:
		s.stats.errors.Add(1)
		writeFCM(w, fcmFailure{http.StatusInternalServerError, "Internal error encountered.", "INTERNAL", ""}, 0)
		return
	}

	var req fcmRequest
	f, ok := s.fcmRefusal(r, body, tooLarge, &req)
	if !ok {
		s.stats.errors.Add(1)
		writeFCM(w, f, 0)
		return
	}
	token := req.Message.Token
	switch s.fate(token) {
	case fateUnregistered:
		s.stats.unregistered.Add(1)
		writeFCM(w, fcmFailure{http.StatusNotFound, "Requested entity was not found.", "UNREGISTERED", ""}, 0)
		return
	case fateBadToken:
		s.stats.badToken.Add(1)
		writeFCM(w, fcmFailure{http.StatusBadRequest, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT", "message.token"}, 0)
		return
	}
	name := "projects/" + r.PathValue("project") + "/messages/" + strconv.FormatUint(s.nextID.Add(1), 10)
	if !req.ValidateOnly {
		s.rec.add(providerFCM, token, req.collapseID(), at, s.keep(r, body))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"name":"` + name + `"}`))
}

// fcmRefusal checks authentication, the test hook and the message the way
// FCM does, filling req; ok is false when f must be answered.
func (s *Server) fcmRefusal(r *http.Request, body []byte, tooLarge bool, req *fcmRequest) (f fcmFailure, ok bool) {
	if s.opts.RequireAuth {
		if bearer, found := cutPrefixFold(r.Header.Get("Authorization"), "bearer "); !found || bearer == "" {
			return fcmFailure{http.StatusUnauthorized, "Request is missing required authentication credential.", "", ""}, false
		}
	}
	// encoding/json's rules (names matched whatever their case, the last
	// of two duplicates kept, bad UTF-8 replaced) on the v2 engine, which
	// decodes an SDK body in about a third of the time with a third of the
	// allocations: this was the fake's largest cost after HTTP/2 itself.
	if tooLarge || jsonv1.Unmarshal(body, req) != nil {
		return fcmFailure{http.StatusBadRequest, "Invalid JSON payload received.", "", "message"}, false
	}
	m := &req.Message
	if s.opts.ForceStatus != nil {
		if status, code := s.opts.ForceStatus(m.Token); status != 0 {
			return fcmFailure{status: status, message: "forced by test", errorCode: code}, false
		}
	}
	if m.Token == "" && m.Topic == "" && m.Condition == "" {
		return fcmFailure{http.StatusBadRequest, "Recipient of the message is not set.", "", "message"}, false
	}
	size := 0
	for k, v := range m.Data {
		if reservedDataKey(k) {
			return fcmFailure{http.StatusBadRequest, "Invalid data payload key: " + k, "INVALID_ARGUMENT", "message.data"}, false
		}
		size += len(k) + len(v)
	}
	if n := m.Notification; n != nil {
		size += len(n.Title) + len(n.Body)
	}
	if size > fcmMaxPayload {
		return fcmFailure{http.StatusBadRequest, "Message is too big", "INVALID_ARGUMENT", "message"}, false
	}
	return fcmFailure{}, true
}

// reservedDataKey reports keys FCM refuses in data: "from", "message_type"
// and anything starting with "google" or "gcm".
func reservedDataKey(k string) bool {
	return k == "from" || k == "message_type" || strings.HasPrefix(k, "google") || strings.HasPrefix(k, "gcm")
}

func writeFCM(w http.ResponseWriter, f fcmFailure, retryAfter time.Duration) {
	details := []any{}
	if f.errorCode != "" {
		details = append(details, map[string]string{"@type": fcmErrorType, "errorCode": f.errorCode})
	}
	if f.field != "" {
		details = append(details, map[string]any{
			"@type":           badRequestType,
			"fieldViolations": []map[string]string{{"field": f.field, "description": f.message}},
		})
	}
	body := map[string]any{"error": map[string]any{
		"code":    f.status,
		"message": f.message,
		"status":  grpcStatus(f.status),
		"details": details,
	}}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if retryAfter > 0 {
		h.Set("Retry-After", retryAfterSeconds(retryAfter))
	}
	w.WriteHeader(f.status)
	json.NewEncoder(w).Encode(body)
}

// grpcStatus is the canonical status Google APIs put next to an HTTP code.
func grpcStatus(httpStatus int) string {
	switch httpStatus {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	default:
		if httpStatus >= 500 {
			return "INTERNAL"
		}
		return "FAILED_PRECONDITION"
	}
}

// handleToken is a stand-in OAuth2 token endpoint (POST /token): a service
// account JSON whose token_uri points here lets a client exercise its
// credentials path against the fake. Any assertion gets a token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	tok := "fake-access-token-" + strconv.FormatUint(s.nextID.Add(1), 10)
	w.Write([]byte(`{"access_token":"` + tok + `","token_type":"Bearer","expires_in":3600}`))
}
