package devices

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

var (
	apnsToken = strings.Repeat("ab12", 16) // 64 hex
	fcmToken  = "dQw4w9WgXcQ:APA91bH-x_y.z"
)

// packed is an entry of one FieldEvent field made of parts.
func packed(parts ...string) map[string]string {
	return map[string]string{pipeline.FieldEvent: strings.Join(parts, "\t")}
}

func TestParseEvent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := "1799999999000000"
	put := func(kv ...string) map[string]string {
		m := map[string]string{"op": "put", "app": "news", "token": apnsToken, "platform": "ios", "user": "42", "locale": "en-US", "at": at}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "<absent>" {
				delete(m, kv[i])
				continue
			}
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name      string
		give      map[string]string
		wantField string // "" = valid
	}{
		{"put", put(), ""},
		{"put android", put("platform", "android", "token", fcmToken), ""},
		{"put without locale", put("locale", "<absent>"), ""},
		{"delete needs no platform or user", map[string]string{"op": "delete", "app": "news", "token": fcmToken, "at": at}, ""},
		{"invalidate with platform and user", put("op", "invalidate"), ""},
		{"unknown op", put("op", "upsert"), "op"},
		{"missing op", put("op", "<absent>"), "op"},
		{"empty app", put("app", ""), "app"},
		{"long app", put("app", strings.Repeat("a", 256)), "app"},
		{"app with a newline", put("app", "a\nb"), "app"},
		{"app not utf-8", put("app", "a\xffb"), "app"},
		{"unknown platform", put("platform", "windows"), "platform"},
		{"put without platform", put("platform", "<absent>"), "platform"},
		{"short apns token", put("token", "abcd"), "token"},
		{"apns token not hex", put("token", strings.Repeat("zz", 32)), "token"},
		{"apns token too long", put("token", strings.Repeat("a", 201)), "token"},
		{"fcm token with a space", put("platform", "android", "token", "a b"), "token"},
		{"fcm token too long", put("platform", "android", "token", strings.Repeat("a", MaxFCMToken+1)), "token"},
		{"empty token", put("token", ""), "token"},
		{"delete with a bad token", map[string]string{"op": "delete", "app": "news", "token": "a/b", "at": at}, "token"},
		{"user zero", put("user", "0"), "user_id"},
		{"user negative", put("user", "-5"), "user_id"},
		{"user not a number", put("user", "x"), "user"},
		{"put without user", put("user", "<absent>"), "user"},
		{"long locale", put("locale", strings.Repeat("a", 36)), "locale"},
		{"locale with a slash", put("locale", "en/US"), "locale"},
		{"missing at", put("at", "<absent>"), "at"},
		{"at zero", put("at", "0"), "at"},
		{"at in the far future", put("at", "2800000000000000"), "at"},
		// one packed field (what Message writes for a put)
		{"packed put", packed("put", "news", apnsToken, "ios", "42", "en-US", at), ""},
		{"packed put of an app with spaces", packed("put", "News app | EU", fcmToken, "android", "42", "", at), ""},
		{"packed delete", packed("delete", "news", fcmToken, "", "", "", at), ""},
		{"packed, too few parts", map[string]string{"ev": "put\tnews\t" + apnsToken + "\tios\t42\t" + at}, "ev"},
		{"packed, too many parts", packed("put", "news", apnsToken, "ios", "42", "en", at+"\tx"), "ev"},
		{"packed put without platform", packed("put", "news", apnsToken, "", "42", "", at), "platform"},
		{"packed put without user", packed("put", "news", apnsToken, "ios", "", "", at), "user"},
		{"packed, bad token", packed("put", "news", "xyz", "ios", "42", "", at), "token"},
		{"packed, unknown op", packed("upsert", "news", apnsToken, "ios", "42", "", at), "op"},
		{"packed, bad at", packed("put", "news", apnsToken, "ios", "42", "", "soon"), "at"},
		{"packed wins over separate fields", map[string]string{"ev": packed("put", "news", apnsToken, "ios", "42", "", at)["ev"], "op": "upsert"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvent(tt.give, now)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Fatalf("want an error naming %q, got %v", tt.wantField, err)
			}
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	keys := pipeline.NewKeys("rt", 16)
	tests := []Event{
		{Op: pipeline.OpPut, App: "news", Token: apnsToken, Platform: IOS, User: 7, Locale: "de", At: 1_700_000_000_000_001},
		{Op: pipeline.OpDelete, App: "news", Token: fcmToken, At: 1_700_000_000_000_002},
		{Op: pipeline.OpInvalidate, App: "news", Token: fcmToken, Platform: Android, User: 9, At: 1_700_000_000_000_003},
	}
	for _, give := range tests {
		m := give.Message(keys)
		if want := keys.Stream(pipeline.StreamIngest, keys.HashPartition(give.App+"/"+give.Token)); m.Stream != want {
			t.Errorf("stream %s, want %s", m.Stream, want)
		}
		fields := map[string]string{}
		for i := 0; i < len(m.Fields); i += 2 {
			fields[m.Fields[i]] = m.Fields[i+1]
		}
		got, err := ParseEvent(fields, time.UnixMicro(give.At))
		if err != nil || got != give {
			t.Errorf("round trip of %+v: got %+v, %v", give, got, err)
		}
	}
}

func TestClockStrictlyIncreases(t *testing.T) {
	fixed := time.Unix(1_800_000_000, 0)
	c := &Clock{now: func() time.Time { return fixed }}
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				n := 1 + i%3
				first := c.Stamp(n)
				mu.Lock()
				for i := range int64(n) {
					if seen[first+i] {
						t.Errorf("stamp %d handed out twice", first+i)
					}
					seen[first+i] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// The wall clock going back does not make stamps go back.
	before := c.Stamp(1)
	fixed = fixed.Add(-time.Hour)
	if after := c.Stamp(1); after <= before {
		t.Fatalf("stamp went back: %d then %d", before, after)
	}
}

func TestCanonicalToken(t *testing.T) {
	upper := strings.ToUpper(apnsToken)
	tests := []struct {
		name     string
		platform Platform
		give     string
		want     string
	}{
		{"apns lowercase stays", IOS, apnsToken, apnsToken},
		{"apns upper case is lowered", IOS, upper, apnsToken},
		{"fcm keeps its case", Android, "dQw4:APA91bXYZ", "dQw4:APA91bXYZ"},
		{"unknown platform, an apns token", 0, upper, apnsToken},
		{"unknown platform, an fcm token", 0, "dQw4:APA91bXYZ", "dQw4:APA91bXYZ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanonicalToken(tt.platform, tt.give); got != tt.want {
				t.Errorf("CanonicalToken(%d, %q) = %q, want %q", tt.platform, tt.give, got, tt.want)
			}
		})
	}
}

// A token deleted without its platform is checked against both: one fit for
// neither is said to be so, not as a breach of FCM's rules alone, which read
// as if the client had said android.
func TestValidateAnyToken(t *testing.T) {
	tests := []struct {
		name, give, want string // want "": valid
	}{
		{"apns", strings.Repeat("ab", 32), ""},
		{"fcm", "dGhpcyBpcyBh:APA91b", ""},
		{"empty", "", "token: is required"},
		{"neither", "a b", "token: is neither an APNs (ios) token (64–200 hex characters) nor an FCM (android) one: " +
			"an FCM token has only A-Z a-z 0-9 _ : . - characters; character 2 is ' '"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAnyToken(tt.give)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("ValidateAnyToken(%q) = %v, want %q", tt.give, err, tt.want)
			}
		})
	}
}
