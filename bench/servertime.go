package bench

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
)

// ServerTime is where the servers spent their time during the campaign:
// Redis commands by total microseconds (INFO commandstats; commands run by
// scripts are counted both in their own line and in the script's), and
// PostgreSQL statements by total execution time (pg_stat_statements, when
// the server loads it: the PostgreSQL the bench starts does).
type ServerTime struct {
	Redis    []CommandTime `json:"redis"`
	Postgres []CommandTime `json:"postgres,omitempty"`
}

// CommandTime is one command or statement.
type CommandTime struct {
	Name    string  `json:"name"`
	Calls   int64   `json:"calls"`
	TotalMs float64 `json:"total_ms"`
	// BlocksRead is the statement's blocks PostgreSQL had to read outside
	// its shared buffers (from the OS's cache or disk), of BlocksTouched:
	// when deliver's token reads miss, each miss is a copy of 8 kB and a
	// buffer eviction, and shared_buffers is too small for the index.
	BlocksRead    int64 `json:"blocks_read,omitempty"`
	BlocksTouched int64 `json:"blocks_touched,omitempty"`
}

// resetServerStats zeroes the counters before the trigger.
func resetServerStats(ctx context.Context, rdb rueidis.Client, conn *pgx.Conn) {
	for _, n := range rdb.Nodes() {
		n.Do(ctx, n.B().ConfigResetstat().Build())
	}
	conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
	conn.Exec(ctx, `SELECT pg_stat_statements_reset()`)
}

// readServerTime reads the top commands of every Redis node (summed) and
// the top statements.
func readServerTime(ctx context.Context, rdb rueidis.Client, conn *pgx.Conn, top int) ServerTime {
	var st ServerTime
	sum := map[string]*CommandTime{}
	for _, n := range rdb.Nodes() {
		info, err := n.Do(ctx, n.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			name, isCmd := strings.CutPrefix(name, "cmdstat_")
			if !ok || !isCmd {
				continue
			}
			ct := sum[name]
			if ct == nil {
				ct = &CommandTime{Name: name}
				sum[name] = ct
			}
			for kv := range strings.SplitSeq(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					n, _ := strconv.ParseInt(v, 10, 64)
					ct.Calls += n
				case "usec":
					n, _ := strconv.ParseFloat(v, 64)
					ct.TotalMs += n / 1000
				}
			}
		}
	}
	for _, ct := range sum {
		st.Redis = append(st.Redis, *ct)
	}
	st.Redis = topByTime(st.Redis, top)

	rows, err := conn.Query(ctx, `SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 120), calls, total_exec_time,
			shared_blks_read, shared_blks_hit + shared_blks_read
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT $1`, top)
	if err == nil {
		for rows.Next() {
			var ct CommandTime
			if rows.Scan(&ct.Name, &ct.Calls, &ct.TotalMs, &ct.BlocksRead, &ct.BlocksTouched) == nil {
				st.Postgres = append(st.Postgres, ct)
			}
		}
		rows.Close()
	}
	return st
}

func topByTime(cs []CommandTime, n int) []CommandTime {
	slices.SortFunc(cs, func(a, b CommandTime) int {
		switch {
		case a.TotalMs > b.TotalMs:
			return -1
		case a.TotalMs < b.TotalMs:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return cs[:min(n, len(cs))]
}
