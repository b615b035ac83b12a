package push

import (
	"testing"
	"time"
)

// The notification's own category is aps.category; when it names none,
// the request's category (what users mute) stands in for it (README and
// the OpenAPI document say so).
func TestRenderCategory(t *testing.T) {
	tests := []struct {
		name, own, request, want string
	}{
		{"its own wins", "REPLY", "promo", "REPLY"},
		{"the request's stands in", "", "promo", "promo"},
		{"neither", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Content{Text: Text{Title: "t"}, Category: tt.own}
			n, err := c.Render("c1", "", tt.request, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Category != tt.want {
				t.Errorf("category %q, want %q", n.Category, tt.want)
			}
		})
	}
}
