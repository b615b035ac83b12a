package deliver

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// appendMasks and appendGroups cover exactly the ids, in chunks that name
// their key (or hash field) and first id, in runs that bitSet reads back.
func TestAppendMasks(t *testing.T) {
	ids := []int64{0, 1, 7, 8, 100, 101, 5000, 65535, 65536, 65537, 3 << 16, 3<<16 + 9000}
	for i := int64(0); i < 9000; i += 3 {
		ids = append(ids, 5<<16+i) // a run longer than maskMax bytes
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	tests := []struct {
		name string
		m    markSet
	}{
		{"bitmap keys", markSet{bits: chunkBits, key: func(chunk int64) string { return "k" + strconv.FormatInt(chunk, 10) }}},
		{"hash fields", markSet{bits: pipeline.MessageMarkBits, hash: "h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantRef := func(chunk int64) (string, string) {
				if tt.m.hash != "" {
					return "h", strconv.FormatInt(chunk, 10)
				}
				return "k" + strconv.FormatInt(chunk, 10), ""
			}
			args, n := appendMasks(nil, ids, tt.m, func(key string) string { return key })
			if len(args) != 5*n {
				t.Fatalf("%d args for %d groups", len(args), n)
			}
			var got []int64
			for g := 0; g < n; g++ {
				key, field, baseArg, firstArg, mask := args[5*g], args[5*g+1], args[5*g+2], args[5*g+3], args[5*g+4]
				base, _ := strconv.ParseInt(baseArg, 10, 64)
				first, _ := strconv.ParseInt(firstArg, 10, 64)
				wk, wf := wantRef(base >> tt.m.bits)
				if key != wk || field != wf || base%(1<<tt.m.bits) != 0 || len(mask) == 0 || len(mask) > maskMax {
					t.Fatalf("group %d: key %q field %q base %d mask %d bytes", g, key, field, base, len(mask))
				}
				for off := first * 8; off < (first+int64(len(mask)))*8; off++ {
					if bitSet(mask, first, off) {
						got = append(got, base+off)
					}
				}
			}
			if !slices.Equal(got, ids) {
				t.Fatalf("masks hold %d ids, want %d: %v", len(got), len(ids), got[:min(len(got), 20)])
			}

			args, n = appendGroups(nil, ids, tt.m, func(key string) string { return key })
			got = got[:0]
			for i, g := 0, 0; g < n; g++ {
				key, field, baseArg, countArg := args[i], args[i+1], args[i+2], args[i+3]
				base, _ := strconv.ParseInt(baseArg, 10, 64)
				count, _ := strconv.Atoi(countArg)
				if wk, wf := wantRef(base >> tt.m.bits); key != wk || field != wf {
					t.Fatalf("group %d: key %q field %q, want %q %q", g, key, field, wk, wf)
				}
				for _, a := range args[i+4 : i+4+count] {
					id, _ := strconv.ParseInt(a, 10, 64)
					if id-base < 0 || id-base >= 1<<tt.m.bits {
						t.Fatalf("id %d outside its chunk at %d", id, base)
					}
					got = append(got, id)
				}
				i += 4 + count
			}
			if !slices.Equal(got, ids) {
				t.Fatalf("groups hold %d ids, want %d", len(got), len(ids))
			}
		})
	}
}

// TestMarksLiveWhileTheCampaignSends: a campaign's sent marks and done
// users outlive its last write by the marks' TTL, not its first: a
// campaign that sends for longer than its TTL and an hour (a throttled
// fan-out of a short-lived notification) must not lose the marks of the
// devices it sent first while it still sends. Without them a retry, claim
// or replay of those users sends to them again. The marks are made to
// expire in a minute, as if the campaign had been sending that long, and
// the campaign's next users in the same chunks must push that back.
func TestMarksLiveWhileTheCampaignSends(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	const users = 40
	devices := f.seedDevices(users, false)
	f.createCampaign("clong", `{}`)
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)}}, "d1", 30*time.Second)

	markKeys := func() []string {
		var out []string
		for _, kind := range []string{"sent", "done"} {
			ks, err := f.rdb.Do(f.ctx, f.rdb.B().Keys().Pattern(f.keys.Prefix+":*:"+kind+":clong:*").Build()).AsStrSlice()
			if err != nil || len(ks) == 0 {
				t.Fatalf("%s marks of clong: %v (%v)", kind, ks, err)
			}
			out = append(out, ks...)
		}
		return out
	}
	f.emitUsers("clong", userRange(users/2))
	f.waitDone("clong", users/2, 20*time.Second)
	const aged = 60 // seconds left
	for _, k := range markKeys() {
		if err := f.rdb.Do(f.ctx, f.rdb.B().Expire().Key(k).Seconds(aged).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	f.emitUsers("clong", userRange(users)[users/2:])
	f.waitDone("clong", users, 20*time.Second)
	checkExactlyOnce(t, f, "clong", devices, fake)
	for _, k := range markKeys() {
		ttl, err := f.rdb.Do(f.ctx, f.rdb.B().Ttl().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		// The campaign's TTL is an hour: its marks live two past a write.
		if ttl <= aged {
			t.Errorf("%s expires in %ds though the campaign wrote it just now", k, ttl)
		}
	}
}
