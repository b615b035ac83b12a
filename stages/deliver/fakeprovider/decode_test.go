package fakeprovider

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"reflect"
	"testing"
)

// sdkFCMBody is what firebase's messaging client sends for a chat message
// (a notification, data, the android and apns blocks).
const sdkFCMBody = `{"message":{"data":{"chat":"42","from_user":"7"},"notification":{"title":"Hello there",` +
	`"body":"A message body of some length, like a chat line."},"android":{"ttl":"3600s","collapse_key":"msg-123456",` +
	`"priority":"high","notification":{"sound":"default","tag":"msg-123456","notification_count":3}},` +
	`"apns":{"headers":{"apns-collapse-id":"msg-123456","apns-expiration":"1800000000","apns-priority":"10"},` +
	`"payload":{"aps":{"badge":3,"sound":"default"}}},"token":"tok-0123456789abcdef0123456789abcdef"}}`

// The fake reads FCM bodies by encoding/json's rules on a faster decoder:
// what it accepts, refuses and keeps must stay what encoding/json made of
// the same bytes.
func TestFCMDecodeKeepsEncodingJSONRules(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"sdk body", sdkFCMBody},
		{"names in another case", `{"MESSAGE":{"Token":"t1","Android":{"Collapse_Key":"c"}}}`},
		{"duplicate names keep the last", `{"message":{"token":"t1","token":"t2"}}`},
		{"invalid UTF-8 is replaced", "{\"message\":{\"token\":\"t\xff1\"}}"},
		{"unknown members are skipped", `{"message":{"token":"t1","webpush":{"x":[1,2,{}]}},"extra":null}`},
		{"null blocks", `{"message":{"token":"t1","android":null,"notification":null,"data":null}}`},
		{"data value not a string", `{"message":{"token":"t1","data":{"k":1}}}`},
		{"validate_only", `{"validate_only":true,"message":{"token":"t1"}}`},
		{"trailing data", `{"message":{"token":"t1"}} {}`},
		{"truncated", `{"message":{"token":"t1"`},
		{"not an object", `[1,2]`},
		{"empty", ``},
	}
	s := &Server{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want fcmRequest
			wantErr := json.Unmarshal([]byte(tt.give), &want)
			var got fcmRequest
			f, ok := s.fcmRefusal(httptest.NewRequest("POST", "/v1/projects/p/messages:send", nil), []byte(tt.give), false, &got)
			if invalid := !ok && f.message == "Invalid JSON payload received."; invalid != (wantErr != nil) {
				t.Fatalf("refused as invalid JSON: %v (%+v); encoding/json's error: %v", invalid, f, wantErr)
			}
			if wantErr == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %+v, encoding/json decoded %+v", got, want)
			}
		})
	}
}

// A body decoded allocates about a dozen times (encoding/json: 37): at
// 12,000 sends a second the fake's garbage is a share of its CPU.
func TestFCMDecodeAllocations(t *testing.T) {
	s := &Server{}
	r := httptest.NewRequest("POST", "/v1/projects/p/messages:send", nil)
	body := []byte(sdkFCMBody)
	allocs := testing.AllocsPerRun(100, func() {
		var req fcmRequest
		if _, ok := s.fcmRefusal(r, body, false, &req); !ok {
			t.Fatal("the SDK's body was refused")
		}
	})
	if allocs > 20 {
		t.Errorf("decoding an FCM body allocates %.0f times, want at most 20", allocs)
	}
}

func TestNewUUIDIsTheCounterInUUIDShape(t *testing.T) {
	tests := []struct {
		give uint64 // the counter before the call
	}{{0}, {9}, {0xfffe}, {1<<48 - 2}, {1 << 48}, {1<<64 - 2}}
	for _, tt := range tests {
		var s Server
		s.nextID.Store(tt.give)
		n := tt.give + 1
		want := fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(n>>48), n&0xffffffffffff)
		if got := s.newUUID(); got != want {
			t.Errorf("after %d: %q, want %q", tt.give, got, want)
		}
	}
}

func BenchmarkFCMDecode(b *testing.B) {
	s := &Server{}
	r := httptest.NewRequest("POST", "/v1/projects/p/messages:send", nil)
	body := []byte(sdkFCMBody)
	b.ReportAllocs()
	for b.Loop() {
		var req fcmRequest
		s.fcmRefusal(r, body, false, &req)
	}
}
