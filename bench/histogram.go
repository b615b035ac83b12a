package bench

import (
	"bufio"
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// buckets is a Prometheus histogram as scraped: each bucket's upper bound
// (le) and its cumulative count.
type buckets map[float64]float64

// scrapeBuckets reads the buckets of histogram name (summed over its
// label sets) from the /metrics of addr.
func scrapeBuckets(ctx context.Context, addr, name string) (buckets, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b := buckets{}
	prefix := name + "_bucket{"
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		_, le, ok := strings.Cut(line, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" too
		f := strings.Fields(line)
		n, err2 := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil && err2 == nil {
			b[bound] += n
		}
	}
	return b, sc.Err()
}

// add adds o's counts to b's.
func (b buckets) add(o buckets) {
	for le, n := range o {
		b[le] += n
	}
}

// since is what was counted after then.
func (b buckets) since(then buckets) buckets {
	out := buckets{}
	for le, n := range b {
		out[le] = n - then[le]
	}
	return out
}

// quantile is the upper bound of the bucket that holds quantile q (as
// histogram_quantile reads it, without interpolating): +Inf past the last
// bound, NaN with nothing counted.
func (b buckets) quantile(q float64) float64 {
	total := b[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	best := math.Inf(1)
	for le, n := range b {
		if n >= q*total && le < best {
			best = le
		}
	}
	return best
}
