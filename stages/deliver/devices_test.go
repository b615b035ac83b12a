package deliver

import (
	"slices"
	"testing"
)

// The window of a user's devices is found wherever the previous one ended:
// ascending targets (the usual batch), targets out of order, repeated and
// absent users, far jumps.
func TestDevicesOfUser(t *testing.T) {
	var sorted []device
	for _, u := range []int64{2, 2, 3, 5, 5, 5, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 90} {
		sorted = append(sorted, device{user: u, id: int64(len(sorted))})
	}
	want := func(user int64) []int64 {
		var ids []int64
		for _, d := range sorted {
			if d.user == user {
				ids = append(ids, d.id)
			}
		}
		return ids
	}
	tests := []struct {
		name  string
		users []int64
	}{
		{"ascending", []int64{2, 3, 5, 40, 41, 50, 90}},
		{"with users without devices", []int64{1, 2, 4, 5, 6, 60, 90, 91}},
		{"descending", []int64{90, 50, 5, 3, 2}},
		{"repeated", []int64{5, 5, 2, 2, 90, 90}},
		{"far jump forward", []int64{2, 90, 3}},
		{"out of order", []int64{41, 3, 49, 2, 44, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := 0
			for _, u := range tt.users {
				var ds []device
				ds, next = devicesOfUser(sorted, u, next)
				var got []int64
				for _, d := range ds {
					got = append(got, d.id)
				}
				if !slices.Equal(got, want(u)) {
					t.Errorf("user %d: devices %v, want %v", u, got, want(u))
				}
			}
		})
	}
}
