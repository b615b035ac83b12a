package localserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// redisError is an error reply ("-ERR ...", "-LOADING ...") from the server.
type redisError string

func (e redisError) Error() string { return string(e) }

// redisDo sends one command on a fresh connection and returns the decoded
// RESP2 reply: string, int64, []any, nil, or a redisError. A minimal client
// is enough for readiness checks and avoids the full client's handshake and
// cluster discovery against servers that are still starting.
func redisDo(addr string, timeout time.Duration, args ...string) (any, error) {
	return redisDial{}.do(addr, timeout, args...)
}

// redisDial is how redisDo reaches a secured server: over TLS, and with
// AUTH first when password is set.
type redisDial struct {
	tls      *tls.Config
	password string
	err      error // the TLS files could not be read
}

func (d redisDial) do(addr string, timeout time.Duration, args ...string) (any, error) {
	if d.err != nil {
		return nil, d.err
	}
	var conn net.Conn
	var err error
	if d.tls != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, d.tls)
	} else {
		conn, err = net.DialTimeout("tcp", addr, timeout)
	}
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	if d.password != "" {
		if _, err := roundTrip(conn, br, "AUTH", d.password); err != nil {
			return nil, err
		}
	}
	return roundTrip(conn, br, args...)
}

func roundTrip(conn net.Conn, br *bufio.Reader, args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, err
	}
	reply, err := readReply(br)
	if err != nil {
		return nil, err
	}
	if e, ok := reply.(redisError); ok {
		return nil, e
	}
	return reply, nil
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2) // payload + CRLF
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		items := make([]any, n)
		for i := range items {
			if items[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}
