package resolve

import (
	"encoding/binary"
	"slices"
	"testing"
)

// int8Array is PostgreSQL's binary one-dimensional int8[] (no NULLs).
func int8Array(ids ...int64) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1) // ndim
	b = binary.BigEndian.AppendUint32(b, 0)    // has nulls
	b = binary.BigEndian.AppendUint32(b, 20)   // int8's oid
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(id))
	}
	return b
}

func TestAppendInt8Array(t *testing.T) {
	empty := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0), 0), 20)
	withNull := int8Array(1)
	binary.BigEndian.PutUint32(withNull[4:], 1)
	tests := []struct {
		name   string
		give   []byte
		want   []int64
		wantOK bool
	}{
		{"null (no rows)", nil, nil, true},
		{"empty array", empty, nil, true},
		{"ids", int8Array(1, 5, 1<<62, 9223372036854775807), []int64{1, 5, 1 << 62, 9223372036854775807}, true},
		{"truncated", int8Array(1, 2)[:30], nil, false},
		{"a null element", withNull, nil, false},
		{"short header", []byte{0, 0, 0, 1}, nil, false},
	}
	for _, tt := range tests {
		got, ok := appendInt8Array(nil, tt.give)
		if ok != tt.wantOK || ok && !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v %v, want %v %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}
