package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Sends go one per worker until the provider is seen to answer within
// microseconds, and go back to one per worker when it slows down.
func TestChunkSizeFollowsSendTimes(t *testing.T) {
	h := &Handler{sendTimes: newSendTimes(map[push.Platform]push.Sender{push.IOS: &NullSender{}})}
	if n := h.chunkSize(push.IOS); n != 1 {
		t.Fatalf("before any send: chunk %d, want 1", n)
	}
	for range 200 {
		h.observeSend(push.IOS, 300*time.Nanosecond)
	}
	if n := h.chunkSize(push.IOS); n != maxChunk {
		t.Fatalf("after quick sends: chunk %d, want %d", n, maxChunk)
	}
	for range 20 {
		h.observeSend(push.IOS, 20*time.Millisecond)
	}
	if n := h.chunkSize(push.IOS); n != 1 {
		t.Fatalf("after slow sends: chunk %d, want 1", n)
	}
	if n := h.chunkSize(push.Android); n != maxChunk {
		t.Fatalf("no sender: chunk %d, want %d (marked failed at once)", n, maxChunk)
	}
}
