package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/raftlock/raftlock/fsm"
)

// mountDebug adds the debug endpoints enabled by the configuration.
func (n *Node) mountDebug(mux *http.ServeMux) {
	if n.cfg.Debug {
		mux.HandleFunc("GET /debug/state", n.debugState)
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	// The configured clock, not n.clock: the wallclock bug wraps it.
	if cc, ok := n.cfg.Clock.(*ControlledClock); ok {
		mux.HandleFunc("/debug/clock", func(w http.ResponseWriter, r *http.Request) { n.debugClock(w, r, cc) })
	}
}

// DebugState is the answer of /debug/state.
type DebugState struct {
	ID string `json:"id"`
	// Index is the Raft index of the last command applied to the table.
	Index uint64 `json:"index"`
	// Applied is the index of the last entry of any kind handed to the FSM.
	Applied uint64 `json:"applied"`
	// Hash is the SHA-256 of the table's snapshot encoding: two replicas
	// at the same Index must have the same Hash.
	Hash  string `json:"hash"`
	Locks int    `json:"locks"`
}

func (n *Node) debugState(w http.ResponseWriter, _ *http.Request) {
	var st DebugState
	n.fsm.Read(func(t *fsm.Table) {
		st = DebugState{ID: n.cfg.ID, Index: t.Index(), Hash: tableHash(t), Locks: t.Stats().Locks}
	})
	st.Applied = n.fsm.Applied()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// tableHash is the hex SHA-256 of the table's snapshot encoding.
func tableHash(t *fsm.Table) string {
	sum := sha256.Sum256(t.AppendSnapshot(nil))
	return hex.EncodeToString(sum[:])
}

// debugClock: GET shows, POST ?offset=1h&rate=1.01 sets the controlled
// clock.
func (n *Node) debugClock(w http.ResponseWriter, r *http.Request, cc *ControlledClock) {
	if r.Method == http.MethodPost {
		offset, err := time.ParseDuration(r.URL.Query().Get("offset"))
		if err != nil {
			http.Error(w, "offset: "+err.Error(), http.StatusBadRequest)
			return
		}
		rate, err := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
		if err != nil {
			http.Error(w, "rate: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := cc.Set(offset, rate); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.log.Warn("clock changed by fault injection", "wall_offset", offset, "rate", rate)
	}
	offset, rate := cc.Get()
	fmt.Fprintf(w, "offset=%s rate=%v\n", offset, rate)
}

// journalEvent and journalEntry are the lines of the debug journal (the
// fault suite's history.Entry reads them).
type journalEvent struct {
	RequestID string   `json:"rid"`
	Code      string   `json:"code"`
	Keys      []string `json:"keys,omitempty"`
	Owner     string   `json:"owner,omitempty"`
	Tokens    []uint64 `json:"tokens,omitempty"`
}

type journalEntry struct {
	Index     uint64         `json:"i"`
	Time      int64          `json:"t"`
	Op        string         `json:"op,omitempty"`
	RequestID string         `json:"rid,omitempty"`
	Code      string         `json:"code,omitempty"`
	Keys      []string       `json:"keys,omitempty"`
	Owner     string         `json:"owner,omitempty"`
	Tokens    []uint64       `json:"tokens,omitempty"`
	Released  bool           `json:"released,omitempty"`
	Count     int            `json:"count,omitempty"`
	Duplicate bool           `json:"dup,omitempty"`
	Expired   int            `json:"expired,omitempty"`
	Events    []journalEvent `json:"events,omitempty"`
	Restore   uint64         `json:"restore,omitempty"`
}

// journal writes one line per applied entry, unbuffered, so that lines
// written before a kill -9 are in the file (the page cache survives the
// process).
func (n *Node) journal(r *fsm.Result) {
	e := journalEntry{
		Index: r.Index, Time: r.Now, Op: r.Op.String(), RequestID: r.RequestID, Code: r.Code.String(),
		Keys: r.Keys, Owner: r.Owner, Tokens: r.Tokens, Released: r.Released, Count: r.Count,
		Duplicate: r.Duplicate, Expired: r.Expired,
	}
	for _, ev := range r.Events {
		e.Events = append(e.Events, journalEvent{RequestID: ev.RequestID, Code: ev.Code.String(), Keys: ev.Keys, Owner: ev.Owner, Tokens: ev.Tokens})
	}
	n.writeJournal(e)
}

func (n *Node) journalRestore(index uint64) {
	n.writeJournal(journalEntry{Restore: index})
}

func (n *Node) writeJournal(e journalEntry) {
	b, err := json.Marshal(e)
	if err != nil {
		n.log.Error("journal", "err", err)
		return
	}
	if _, err := n.cfg.Journal.Write(append(b, '\n')); err != nil {
		n.log.Error("journal", "err", err)
	}
}
