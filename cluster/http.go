package cluster

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/raftlock/raftlock/api/gen/raftlock/peer/v1/peerv1connect"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
)

// Response headers that tell a caller who leads, so it can go there next.
const (
	LeaderHeader   = "Raftlock-Leader"
	LeaderIDHeader = "Raftlock-Leader-Id"
)

func (n *Node) newHTTPServer() *http.Server {
	limit := n.cfg.MaxRequestBytes
	opts := []connect.HandlerOption{
		connect.WithCodec(jsonCodec{name: "json", limit: limit}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8", limit: limit}),
		connect.WithCodec(protoCodec{limit: limit}),
		// A hard cap far above the limit the codecs enforce, so an abusive
		// body is never read into memory whole.
		connect.WithReadMaxBytes(4 * limit),
		// Lock messages are tens of bytes: compressing them costs CPU and
		// saves nothing. Only large responses (ListLocks pages) are
		// compressed, when the caller accepts it.
		connect.WithCompressMinBytes(4 << 10),
		// Outermost first: metrics see the code callers get, which the error
		// boundary decides; then tokens; then the handler.
		connect.WithInterceptors(n.met.interceptor(), n.errorBoundary()),
	}
	apiOpts := opts
	if n.auth != nil {
		apiOpts = append(slices.Clone(opts), connect.WithInterceptors(n.authInterceptor()))
	}
	apiOpts = append(apiOpts, connect.WithInterceptors(n.departedBeforeStart()))
	apiOpts = append(apiOpts, unsafeOptions(n)...)
	mux := http.NewServeMux()
	api := func(pattern string, h http.Handler) { mux.Handle(pattern, timeHTTP(n.checkRequest(n.admit(h)))) }
	lockPath, lockHandler := raftlockv1connect.NewLockServiceHandler(&lockService{n}, apiOpts...)
	api(lockPath, watchConn(lockHandler))
	clusterPath, clusterHandler := raftlockv1connect.NewClusterServiceHandler(&clusterService{n}, apiOpts...)
	api(clusterPath, clusterHandler)
	// A restore uploads a whole backup file: a body limit and a read
	// deadline of its own (backup.go).
	mux.Handle(raftlockv1connect.ClusterServiceRestoreProcedure, n.restoreUpload(n.admit(clusterHandler)))
	api(n.peersOnly(peerv1connect.NewPeerServiceHandler(&peerService{n}, opts...)))
	mux.Handle(grpchealth.NewHandler(healthChecker{n}))
	reflector := grpcreflect.NewStaticReflector(raftlockv1connect.LockServiceName, raftlockv1connect.ClusterServiceName, grpchealth.HealthV1ServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", n.met.handler())
	n.mountDebug(mux)
	n.mountUI(mux)

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if n.tls == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP2(true)
	}
	return &http.Server{
		Handler:           n.withLeaderHeader(n.withPrincipal(mux)),
		Protocols:         protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ReadHeaderTimeout: 10 * time.Second,
		// Request bodies are small and read at once; a client that trickles
		// one is cut off. No write timeout: an Acquire may wait up to an hour.
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(n.log.With("component", "http").Handler(), slog.LevelDebug),
	}
}

// peersOnly lets only other nodes (a node certificate over TLS) call the
// node-to-node API when TLS is on.
func (n *Node) peersOnly(pattern string, h http.Handler) (string, http.Handler) {
	if n.tls == nil {
		return pattern, h
	}
	return pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.tls.isPeerState(r.TLS) {
			n.writeError(w, r, fmt.Errorf("%w: %w", ErrPermissionDenied, errNotPeer))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// The media types the API accepts (Content-Type, without parameters).
var apiMediaTypes = []string{
	"application/json", "application/proto", // Connect, unary
	"application/connect+json", "application/connect+proto", // Connect, streaming
	"application/grpc", "application/grpc+proto", "application/grpc+json", // gRPC
	"application/grpc-web", "application/grpc-web+proto", "application/grpc-web+json", // gRPC-Web
}

// checkRequest refuses what connect-go would answer unclearly, before it
// reads anything: a Content-Type it does not speak (415 with a body naming
// the accepted types), a GET whose base64 message does not decode
// (invalid_argument), and a body over four times the request limit (the
// read fails at the limit; an envelope that declares more fails at once,
// instead of connect reading what a client may never send).
func (n *Node) checkRequest(h http.Handler) http.Handler {
	return n.checkRequestUpTo(h, int64(4*n.cfg.MaxRequestBytes))
}

// checkRequestUpTo is checkRequest with a limit of maxBody bytes on the
// whole body (a restore's upload is larger than any one message, whose
// limit stays).
func (n *Node) checkRequestUpTo(h http.Handler, maxBody int64) http.Handler {
	maxMessage := int64(4 * n.cfg.MaxRequestBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			ct := r.Header.Get("Content-Type")
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || !slices.Contains(apiMediaTypes, strings.ToLower(mt)) {
				w.Header().Set("Accept-Post", strings.Join(apiMediaTypes, ", "))
				http.Error(w, fmt.Sprintf("unsupported Content-Type %q: use application/json or application/proto (Connect), application/grpc[+proto|+json] (gRPC) or application/grpc-web[+proto|+json] (gRPC-Web)", ct), http.StatusUnsupportedMediaType)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			if enveloped(mt) {
				r.Body = &envelopeGuard{body: r.Body, max: maxMessage}
			}
		case http.MethodGet:
			q := r.URL.Query()
			if q.Get("base64") == "1" {
				if _, err := decodeGetMessage(q.Get("message")); err != nil {
					n.writeError(w, r, invalidArg("message: not valid base64 (URL-safe alphabet, padding optional): %v", err))
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// enveloped reports whether a media type frames messages in envelopes (a
// flags byte and a 4-byte length before each message): gRPC, gRPC-Web and
// Connect streaming.
func enveloped(mediaType string) bool {
	mt := strings.ToLower(mediaType)
	return strings.HasPrefix(mt, "application/grpc") || strings.HasPrefix(mt, "application/connect+")
}

// errEnvelopeTooLarge fails the read after an envelope whose declared
// length is over the limit, so connect refuses it (resource_exhausted) at
// once instead of reading the declared bytes, which an abusive client may
// never send, until the read timeout.
var errEnvelopeTooLarge = errors.New("request message: declared length is over the limit")

// envelopeGuard watches the envelope headers of a request body as connect
// reads it.
type envelopeGuard struct {
	body    io.ReadCloser
	max     int64
	header  [5]byte
	have    int   // bytes of the current header seen
	skip    int64 // message bytes left before the next header
	tripped bool
}

func (g *envelopeGuard) Read(p []byte) (int, error) {
	if g.tripped {
		return 0, errEnvelopeTooLarge
	}
	n, err := g.body.Read(p)
	for b := p[:n]; len(b) > 0; {
		if g.skip > 0 {
			k := min(int64(len(b)), g.skip)
			g.skip -= k
			b = b[k:]
			continue
		}
		k := copy(g.header[g.have:], b)
		g.have += k
		b = b[k:]
		if g.have == len(g.header) {
			g.have = 0
			g.skip = int64(binary.BigEndian.Uint32(g.header[1:]))
			if g.skip > g.max {
				g.tripped = true
			}
		}
	}
	return n, err
}

func (g *envelopeGuard) Close() error { return g.body.Close() }

// decodeGetMessage decodes the message of a Connect GET request as
// connect-go does: URL-safe base64, with or without padding.
func decodeGetMessage(m string) ([]byte, error) {
	if strings.HasSuffix(m, "=") {
		return base64.URLEncoding.DecodeString(m)
	}
	return base64.RawURLEncoding.DecodeString(m)
}

// withLeaderHeader adds the leader hint to every response.
func (n *Node) withLeaderHeader(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr, id := n.Leader(); addr != "" {
			w.Header().Set(LeaderHeader, addr)
			w.Header().Set(LeaderIDHeader, id)
		}
		h.ServeHTTP(w, r)
	})
}

// healthz: the process is alive and not shutting down.
func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-n.shutdownCh:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// readyz: a leader is known and this node has applied its commit index.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if !n.Ready(r.Context()) {
		http.Error(w, "not ready: no leader known, or not caught up", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// healthChecker answers grpc.health.v1 for the whole server and each
// raftlock service: SERVING when the node is ready.
type healthChecker struct{ n *Node }

func (h healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "", raftlockv1connect.LockServiceName, raftlockv1connect.ClusterServiceName:
	default:
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if h.n.Ready(ctx) {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
}

// jsonCodec is Connect's JSON codec made strict: unknown fields are an
// error (a misspelt "ownerID" must not silently become the anonymous
// owner), and bodies over the limit are refused before parsing.
type jsonCodec struct {
	name  string
	limit int
}

func (c jsonCodec) Name() string { return c.name }

func (c jsonCodec) Marshal(m any) ([]byte, error) {
	pm, err := asMessage(m)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(pm)
}

func (c jsonCodec) Unmarshal(b []byte, m any) error {
	pm, err := unmarshalTarget(b, m, c.limit)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		b = []byte("{}")
	}
	err = protojson.Unmarshal(b, pm)
	if err == nil {
		return nil
	}
	if field := badJSONField(b, pm); field != "" {
		if loneSurrogate(b) {
			return fmt.Errorf("field %q: not valid UTF-8 (it holds a lone UTF-16 surrogate escape such as \\ud800)", field)
		}
		return fmt.Errorf("field %q: %w", field, err)
	}
	return err
}

// loneSurrogate reports whether a JSON text holds a \uD800-\uDFFF escape
// that is not half of a surrogate pair: text that is not valid UTF-8.
func loneSurrogate(b []byte) bool {
	s := string(b)
	for i := 0; i+6 <= len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		v, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
		if err != nil || v < 0xd800 || v > 0xdfff {
			i += 5
			continue
		}
		if v <= 0xdbff && i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
			if w, err := strconv.ParseUint(s[i+8:i+12], 16, 16); err == nil && w >= 0xdc00 && w <= 0xdfff {
				i += 11
				continue
			}
		}
		return true
	}
	return false
}

// badJSONField finds which top-level field of a JSON object makes it fail
// to decode into m's type, so the error can name it. It returns "" when
// the body is not an object or no single field is to blame.
func badJSONField(b []byte, m proto.Message) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return ""
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		one, err := json.Marshal(map[string]json.RawMessage{name: fields[name]})
		if err != nil {
			continue
		}
		probe := m.ProtoReflect().New().Interface()
		if protojson.Unmarshal(one, probe) != nil {
			return name
		}
	}
	return ""
}

// protoCodec is the binary codec with the same size limit.
type protoCodec struct{ limit int }

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(m any) ([]byte, error) {
	pm, err := asMessage(m)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(pm)
}

func (c protoCodec) Unmarshal(b []byte, m any) error {
	pm, err := unmarshalTarget(b, m, c.limit)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, pm); err != nil {
		if field := badUTF8Field(b, pm); field != "" {
			return fmt.Errorf("field %q: not valid UTF-8", field)
		}
		return err
	}
	return nil
}

// badUTF8Field names the first top-level string field of the binary
// message b that is not valid UTF-8 ("keys[1]" for an element of a
// repeated field), or "".
func badUTF8Field(b []byte, m proto.Message) string {
	fields := m.ProtoReflect().Descriptor().Fields()
	seen := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd == nil || fd.Kind() != protoreflect.StringKind {
			continue
		}
		i := seen[num]
		seen[num]++
		if !utf8.Valid(v) {
			if fd.IsList() {
				return fmt.Sprintf("%s[%d]", fd.Name(), i)
			}
			return string(fd.Name())
		}
	}
	return ""
}

func asMessage(m any) (proto.Message, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto message", m)
	}
	return pm, nil
}

// unmarshalTarget checks what both codecs check before decoding b into m:
// m is a proto message, and b is within the body limit.
func unmarshalTarget(b []byte, m any, limit int) (proto.Message, error) {
	if len(b) > limit {
		return nil, fmt.Errorf("request body: %d bytes is over the limit of %d", len(b), limit)
	}
	return asMessage(m)
}
