package fakeprovider

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkReceiptsAdd shows what one accepted request costs the fake in
// time and retained memory, so a million-send bench knows what it needs.
func BenchmarkReceiptsAdd(b *testing.B) {
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("%064x", i)
	}
	now := time.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rs := newReceipts(now)
	b.ResetTimer()
	for i := range b.N {
		rs.add(providerAPNs, tokens[i], "campaign-42", now, nil)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "retained-B/receipt")
	runtime.KeepAlive(rs)
}
