package pipelinetest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a server (a Redis), its answers a
// delay late, and nothing either way while held: a Redis slowed down (by
// load, a long script, a far network), or cut off from its client by the
// network (Hold: no request reaches it, no answer comes back, and no
// connection is refused or reset, as in a partition).
type Proxy struct {
	Addr string

	mu   sync.Mutex
	gate chan struct{} // closed while bytes flow
}

// ProxyT starts a proxy to addr whose answers come latency late, closed
// at t's cleanup.
func ProxyT(t testing.TB, addr string, latency time.Duration) *Proxy {
	t.Helper()
	p := &Proxy{gate: make(chan struct{})}
	close(p.gate)
	// Registered after ForwardT's, so it runs first: what is held goes on,
	// and the pipes can end.
	p.Addr = ForwardT(t, addr, func(client, server net.Conn) {
		var both sync.WaitGroup
		both.Go(func() { p.late(server, client, 0) })
		p.late(client, server, latency)
		both.Wait()
	})
	t.Cleanup(p.Release)
	return p
}

// Hold stops forwarding, both ways, until Release: what is sent meanwhile
// waits in the proxy and goes on, in order, once released.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // held already
	}
}

// Release forwards again, what was held first.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

func (p *Proxy) open() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

// late copies src to dst, each read d after it arrived (and not while
// held), in order.
func (p *Proxy) late(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				chunks <- chunk{b[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.at))
		<-p.open()
		if _, err := dst.Write(c.b); err != nil {
			src.Close() // ends the reader
		}
	}
	dst.Close() // src ended: so does the other way
}
