package cluster

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// The web console (/ui): static files embedded in the binary, served to
// anyone (they hold no data), and plain JavaScript that reads everything
// through the API with the bearer token the user pastes, so a console user
// sees exactly what their token may see: the lock table from
// LockService/Watch, members from /ui/members, and ForceRelease only with
// an admin token (the server decides; the page shows its answer).

//go:embed ui
var uiFiles embed.FS

// uiCSP forbids inline scripts and styles and every other origin: the
// console runs only its own files and talks only to this node.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// memberStatusTimeout bounds the Status call to each member for /ui/members.
const memberStatusTimeout = 2 * time.Second

// mountUI serves the console under /ui/.
func (n *Node) mountUI(mux *http.ServeMux) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree is part of the build
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("GET /ui/", uiHeaders(files))
	mux.Handle("GET /ui/members", uiHeaders(http.HandlerFunc(n.uiMembers)))
}

func uiHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", uiCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// uiMember is one member in /ui/members: the member as this node's
// configuration has it, and its own Status answer or why there is none.
type uiMember struct {
	Member json.RawMessage `json:"member"`
	Status json.RawMessage `json:"status,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// uiMembers answers GET /ui/members: this node's Status of every member,
// asked of the member itself (with this node's own credentials), so the
// console shows each node's role, term, applied index and readiness. Same
// rule as ClusterService/Status: a read token, when tokens are on.
func (n *Node) uiMembers(w http.ResponseWriter, r *http.Request) {
	if n.auth != nil {
		p, _ := r.Context().Value(principalKey{}).(*principal)
		if p == nil {
			n.writeError(w, r, ErrUnauthenticated)
			return
		}
		if err := p.authorize(&raftlockv1.StatusRequest{}); err != nil {
			n.writeError(w, r, err)
			return
		}
	}
	own := n.Status()
	out := make([]uiMember, len(own.Members))
	var wg sync.WaitGroup
	for i, m := range own.Members {
		out[i].Member, _ = protojson.Marshal(m)
		if m.Id == own.Id {
			out[i].Status, _ = protojson.Marshal(own)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), memberStatusTimeout)
			defer cancel()
			resp, err := n.peers.clusterClient(m.Address).Status(ctx, connect.NewRequest(&raftlockv1.StatusRequest{}))
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Status, _ = protojson.Marshal(resp.Msg)
		}()
	}
	wg.Wait()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"node": own.Id, "members": out})
}
