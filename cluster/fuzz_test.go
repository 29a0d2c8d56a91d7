package cluster

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/fsm"
)

// FuzzRequestDecoding feeds arbitrary bodies to the API's JSON and binary
// codecs and, when they decode, to the validation of an Acquire: nothing
// may panic, an error must name a field, and whatever passes validation
// must be a command the lock table accepts as valid.
//
//	go test -run '^$' -fuzz FuzzRequestDecoding -fuzztime 5m ./cluster/
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range []string{
		`{"keys":["prod_123"],"ownerId":"me"}`,
		`{"keys":["a","b","a"],"ownerId":"me","expire":"1.5s","waitTimeout":"2s","requestId":"r1"}`,
		`{"keys":[""],"expire":"-1s"}`,
		`{"keys":"x"}`,
		`{"ownerID":"typo"}`,
		`{"keys":["a\u0000b"]}`,
		`{"expire":"999999999999s"}`,
	} {
		f.Add([]byte(s), false)
	}
	pb, _ := proto.Marshal(&raftlockv1.AcquireRequest{Keys: []string{"k"}, OwnerId: "o"})
	f.Add(pb, true)
	jc, pc := jsonCodec{name: "json", limit: 256 << 10}, protoCodec{limit: 256 << 10}
	f.Fuzz(func(t *testing.T, body []byte, binary bool) {
		var req raftlockv1.AcquireRequest
		var err error
		if binary {
			err = pc.Unmarshal(body, &req)
		} else {
			err = jc.Unmarshal(body, &req)
		}
		if err != nil {
			return
		}
		c, err := commandFor(fsm.OpAcquire, req.Keys, req.OwnerId, req.RequestId)
		if err == nil {
			c.Expire, err = duration("expire", req.Expire, fsm.ValidateExpire)
		}
		if err == nil {
			c.Wait, err = duration("wait_timeout", req.WaitTimeout, fsm.ValidateWait)
		}
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "keys") && !strings.HasPrefix(msg, "owner_id") && !strings.HasPrefix(msg, "request_id") &&
				!strings.HasPrefix(msg, "expire") && !strings.HasPrefix(msg, "wait_timeout") {
				t.Fatalf("validation error %q names no field", msg)
			}
			return
		}
		tab := fsm.New(fsm.DefaultConfig())
		if r := tab.Apply(1, c); r.Code == fsm.CodeInvalid {
			t.Fatalf("validated request refused by the lock table: %s (%+v)", r.Msg, c)
		}
	})
}

// FuzzStreamHandshake feeds arbitrary first bytes to the port's Raft side
// (the marker check in Accept) and to the TLS ClientHello sniffer: nothing
// may panic or hang, and only a connection starting with the marker is
// accepted.
//
//	go test -run '^$' -fuzz FuzzStreamHandshake -fuzztime 5m ./cluster/
func FuzzStreamHandshake(f *testing.F) {
	f.Add([]byte{raftMarker, 0x81, 0xa4})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, first []byte) {
		// The sniffer sees the bytes as cmux would hand them over.
		_, _ = helloALPN(bytes.NewReader(first))

		server, client := net.Pipe()
		refused := make(chan struct{})
		ln := &oneConnListener{c: &closeSignal{Conn: server, closed: refused}, closed: make(chan struct{})}
		s := newStreamLayer(ln, Config{Advertise: "127.0.0.1:1"}, nil)
		defer s.Close()
		go func() {
			_ = client.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = client.Write(first)
			client.Close()
		}()
		accepted := make(chan net.Conn, 1)
		go func() {
			if c, err := s.Accept(); err == nil {
				accepted <- c
			}
		}()
		select {
		case c := <-accepted:
			c.Close()
			if len(first) == 0 || first[0] != raftMarker {
				t.Fatalf("accepted a stream starting with %x", first)
			}
		case <-refused:
			if len(first) > 0 && first[0] == raftMarker {
				t.Fatalf("a stream starting with the marker was refused")
			}
		case <-time.After(handshakeTimeout + time.Second):
			t.Fatalf("the stream was neither accepted nor refused within the handshake timeout")
		}
	})
}

// closeSignal closes its channel when the connection is closed.
type closeSignal struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *closeSignal) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	c      net.Conn
	used   bool
	closed chan struct{}
	once   sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.used {
		<-l.closed
		return nil, io.EOF
	}
	l.used = true
	return l.c, nil
}
func (l *oneConnListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }
