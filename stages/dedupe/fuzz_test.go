package dedupe

import (
	"slices"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// FuzzParseEntry feeds the dedupe stage's entry decoder arbitrary fields. It
// must never panic; what it accepts must be what the dedupe script relies on
// (a valid campaign id, positive strictly ascending ids, at least one), and
// the per-bucket fragments the script receives must encode exactly those ids.
func FuzzParseEntry(f *testing.F) {
	f.Add(uint8(0x0f), "c1", pipeline.EncodeIDs([]int64{1, 2, 3, 1025}), pipeline.EncodeIDs([]int64{7}), "1")
	f.Add(uint8(0x03), "c-2.x_y", pipeline.EncodeIDs(bucketful(70)), "", "")
	f.Add(uint8(0x05), "c3", "", pipeline.EncodeIDs([]int64{1 << 40}), "")
	f.Add(uint8(0x03), "c4", pipeline.EncodeIDs([]int64{3, 2}), "", "")
	f.Add(uint8(0x03), "{c5}", pipeline.EncodeIDs([]int64{-1, 0}), "", "")
	f.Add(uint8(0x03), "c6", "\xff\xff\xff", "", "")
	f.Fuzz(func(t *testing.T, present uint8, campaignID, u, m, force string) {
		fields := map[string]string{}
		for i, kv := range [][2]string{
			{pipeline.FieldCampaign, campaignID}, {pipeline.FieldUsers, u}, {pipeline.FieldMuted, m}, {pipeline.FieldForce, force},
		} {
			if present&(1<<i) != 0 {
				fields[kv[0]] = kv[1]
			}
		}
		en, err := parse(3, pipeline.Entry{ID: "1-1", Fields: fields})
		if err != nil {
			return
		}
		if en.index != 3 || en.campaign != fields[pipeline.FieldCampaign] || en.u != fields[pipeline.FieldUsers] {
			t.Fatalf("entry %+v does not carry its fields %q", en, fields)
		}
		if len(en.reached)+len(en.muted) == 0 {
			t.Fatal("accepted an entry without user ids")
		}
		for _, ids := range [][]int64{en.reached, en.muted} {
			for i, id := range ids {
				if id <= 0 || i > 0 && id <= ids[i-1] {
					t.Fatalf("accepted ids the script cannot take: %v", ids)
				}
			}
			if got := decodeFragments(t, ids); !slices.Equal(got, ids) {
				t.Fatalf("fragments of %v decode to %v", ids, got)
			}
		}
		// u is forwarded as is when every id is new: it must be exactly the
		// canonical encoding of what was checked.
		if en.u != "" && pipeline.EncodeIDs(en.reached) != en.u {
			t.Fatalf("u %q is not the encoding of %v", en.u, en.reached)
		}
	})
}

// bucketful is n ids in one bucket (n > listMax gives a bitmap fragment).
func bucketful(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = bucketSize*5 + int64(i)*3
	}
	return ids
}

// decodeFragments reads appendFragments' output back the way the script
// does: a bitmap of bitmapBytes, or a list of 2-byte offsets.
func decodeFragments(t *testing.T, ids []int64) []int64 {
	args, n := appendFragments(nil, ids)
	if len(args) != 2*n {
		t.Fatalf("%d args for %d buckets", len(args), n)
	}
	var out []int64
	prevBucket := int64(-1)
	for i := 0; i < len(args); i += 2 {
		var bucket int64
		for _, c := range args[i] {
			bucket = bucket*10 + int64(c-'0')
		}
		if bucket <= prevBucket {
			t.Fatalf("bucket %d after %d", bucket, prevBucket)
		}
		prevBucket = bucket
		frag := args[i+1]
		if len(frag) == bitmapBytes {
			for off := 0; off < bucketSize; off++ {
				if frag[off/8]&(1<<(off%8)) != 0 {
					out = append(out, bucket<<bucketBits|int64(off))
				}
			}
			continue
		}
		if len(frag)%2 != 0 || len(frag)/2 > listMax {
			t.Fatalf("fragment of %d bytes is neither a list nor a bitmap", len(frag))
		}
		for j := 0; j < len(frag); j += 2 {
			out = append(out, bucket<<bucketBits|int64(frag[j])<<8|int64(frag[j+1]))
		}
	}
	return out
}
