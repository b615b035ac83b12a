package deliver

import (
	"context"
	"testing"
	"time"
)

func TestSlotsTakeUpToFreeAndWaitForGive(t *testing.T) {
	s := newSlots(5)
	ctx := t.Context()
	if n, err := s.take(ctx, 3); n != 3 || err != nil {
		t.Fatalf("take 3 of 5: got %d, %v", n, err)
	}
	if n, err := s.take(ctx, 3); n != 2 || err != nil {
		t.Fatalf("take 3 of the 2 left: got %d, %v", n, err)
	}
	got := make(chan int)
	go func() {
		n, _ := s.take(ctx, 10)
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("took %d with none free", n)
	case <-time.After(50 * time.Millisecond):
	}
	s.give(4)
	if n := <-got; n != 4 {
		t.Fatalf("after giving 4 back, a waiter took %d", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if n, err := s.take(cctx, 1); n != 0 || err == nil {
		t.Fatalf("take with none free and a cancelled context: %d, %v", n, err)
	}
}
