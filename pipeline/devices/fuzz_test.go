package devices

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// FuzzParseEvent feeds the ingest stage's entry decoder arbitrary field
// values (each field present or absent). It must never panic; an entry it
// accepts must satisfy every rule the API applies, and survive the trip
// through Message and ParseEvent unchanged, so what ingest writes to
// PostgreSQL is exactly what was validated.
func FuzzParseEvent(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := "1767323045000000" // now, in unix microseconds
	ios := strings.Repeat("ab", 32)
	f.Add(uint8(0x7f), "put", "news", ios, "ios", "42", "en-GB", at)
	f.Add(uint8(0x7f), "put", "news", "cZ3x-_:APA91bHun4", "android", "7", "", at)
	f.Add(uint8(0x43), "delete", "news", ios, "", "", "", at)
	f.Add(uint8(0x47), "invalidate", "news", "tok.en", "android", "", "", at)
	f.Add(uint8(0x7f), "put", "news", ios, "ios", "-1", "en", at)
	f.Add(uint8(0x7f), "put", "news\x00", ios, "ios", "1", "en", "99999999999999999")
	f.Add(uint8(0x7f), "put", "n", ios, "IOS", "1", "\u202e", "0")
	keys := pipeline.NewKeys("fz", 16)
	f.Fuzz(func(t *testing.T, present uint8, op, app, token, platform, user, locale, atField string) {
		fields := map[string]string{}
		for i, kv := range [][2]string{
			{pipeline.FieldOp, op}, {pipeline.FieldApp, app}, {pipeline.FieldToken, token},
			{pipeline.FieldPlatform, platform}, {pipeline.FieldUser, user}, {pipeline.FieldLocale, locale},
			{pipeline.FieldAt, atField},
		} {
			if present&(1<<i) != 0 {
				fields[kv[0]] = kv[1]
			}
		}
		ev, err := ParseEvent(fields, now)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %v is not a *FieldError naming the field", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error message of %d bytes: bad values must be clipped", len(err.Error()))
			}
			return
		}
		if err := ValidateApp(ev.App); err != nil {
			t.Fatalf("accepted a bad app: %v", err)
		}
		if err := ValidateLocale(ev.Locale); err != nil {
			t.Fatalf("accepted a bad locale: %v", err)
		}
		if ev.Platform != 0 {
			if err := ValidateToken(ev.Platform, ev.Token); err != nil {
				t.Fatalf("accepted a bad token: %v", err)
			}
		} else if err := ValidateAnyToken(ev.Token); err != nil {
			t.Fatalf("accepted a bad token: %v", err)
		}
		if ev.Op == pipeline.OpPut && (ev.Platform == 0 || ev.User <= 0) {
			t.Fatalf("accepted a put without platform or user: %+v", ev)
		}
		if ev.User < 0 || ev.At <= 0 || ev.At > now.Add(maxFuture).UnixMicro() {
			t.Fatalf("accepted user %d at %d", ev.User, ev.At)
		}
		msg := ev.Message(keys)
		if want := keys.Stream(pipeline.StreamIngest, Partition(keys, ev.App, ev.Token)); msg.Stream != want {
			t.Fatalf("message to %s, want %s", msg.Stream, want)
		}
		again := map[string]string{}
		for i := 0; i+1 < len(msg.Fields); i += 2 {
			again[msg.Fields[i]] = msg.Fields[i+1]
		}
		ev2, err := ParseEvent(again, now)
		if err != nil || ev2 != ev {
			t.Fatalf("round trip: %+v -> %v -> %+v, %v", ev, again, ev2, err)
		}
	})
}

// FuzzParsePackedEvent feeds arbitrary FieldEvent values (the one-field form
// Message writes for a put): never a panic, an error names a field, and an
// accepted event survives Message and ParseEvent unchanged.
func FuzzParsePackedEvent(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ios := strings.Repeat("ab", 32)
	f.Add("put\tnews\t" + ios + "\tios\t42\ten-GB\t1767323045000000")
	f.Add("put\tnews app\tcZ3x-_:APA91bHun4\tandroid\t7\t\t1767323045000000")
	f.Add("delete\tnews\t" + ios + "\t\t\t\t1767323045000000")
	f.Add("put\tnews\t" + ios + "\tios\t42\ten\t1\t")
	f.Add("\t\t\t\t\t\t")
	keys := pipeline.NewKeys("fz", 16)
	f.Fuzz(func(t *testing.T, packed string) {
		ev, err := ParseEvent(map[string]string{pipeline.FieldEvent: packed}, now)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %v is not a *FieldError naming the field", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error message of %d bytes: bad values must be clipped", len(err.Error()))
			}
			return
		}
		msg := ev.Message(keys)
		again := map[string]string{}
		for i := 0; i+1 < len(msg.Fields); i += 2 {
			again[msg.Fields[i]] = msg.Fields[i+1]
		}
		ev2, err := ParseEvent(again, now)
		if err != nil || ev2 != ev {
			t.Fatalf("round trip: %+v -> %v -> %+v, %v", ev, again, ev2, err)
		}
	})
}
