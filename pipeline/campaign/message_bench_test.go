package campaign

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkCreateMessage sends chat-shaped messages (50 users, a title, a
// body, a little data) through CreateMessage on one connection to a real
// PostgreSQL, and reports what they cost it: CPU of the backend per
// message (from /proc, so other work on a shared machine does not count),
// the WAL it writes per message (the server is the test binary's own), and
// the average row (pg_column_size) and heap per 10,000 messages (before
// any vacuum: each row is updated once, when queued).
func BenchmarkCreateMessage(b *testing.B) {
	rdb, db, keys, _ := worldAt(b)
	cfg := db.Config()
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(one.Close)
	var pid int
	if err := one.QueryRow(b.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	users := make([]int64, 50)
	for i := range users {
		users[i] = int64(1_000_000 + 37*i)
	}
	msg := func(i int) Message {
		return Message{Campaign: Campaign{ID: "chat-" + strconv.Itoa(i), App: "com.example.chat", Title: "Room 7",
			Body: "See you at eight? I'll bring the slides.", Data: []byte(`{"room":"7","msg":"` + strconv.Itoa(i) + `"}`),
			TTL: 24 * time.Hour}, Users: users}
	}
	var wal0 string
	if err := one.QueryRow(b.Context(), `SELECT pg_current_wal_lsn()::text`).Scan(&wal0); err != nil {
		b.Fatal(err)
	}
	cpu0 := backendCPU(b, pid)
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := CreateMessage(b.Context(), rdb, one, keys, msg(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(backendCPU(b, pid)-cpu0)/float64(b.N)/float64(time.Microsecond), "pg-cpu-µs/msg")
	var row, heap, wal float64
	if err := one.QueryRow(b.Context(), `SELECT avg(pg_column_size(c.*)), pg_table_size('campaigns')::float8 / count(*) * 10000,
		pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) / count(*)
		FROM campaigns c WHERE kind = 'message'`, wal0).Scan(&row, &heap, &wal); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(row, "row-B")
	b.ReportMetric(heap/1e6, "MB/10k-msgs")
	b.ReportMetric(wal, "WAL-B/msg")
}

// backendCPU is the user and system CPU a PostgreSQL backend has used, read
// from /proc (the server runs on this machine in tests).
func backendCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 14th and 15th of the line, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
