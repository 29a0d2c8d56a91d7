package cluster

import (
	"net/http"
	"strings"
	"sync"
	"time"

	armon "github.com/armon/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// The stages of a write on a node, for reading where an Acquire's time
// goes (raftlock_stage_seconds{stage}, docs/performance.md):
//
//	http            the whole call on the node that took it: read, handle, write the answer
//	propose         a command on the leader: handed to Raft until its result is back
//	leader_persist  Raft on the leader: the entry written (and synced) to its own log
//	commit          Raft on the leader: from dispatch until a majority stored it
//	fsm_enqueue     Raft on the leader: a committed entry queued for the state machine
//	fsm_apply       the state machine applying a batch of entries
//	follower_persist a follower storing the entries of one AppendEntries (synced)
//	append_rpc      the leader's AppendEntries round trip to one follower
//
// The Raft stages come from hashicorp/raft's own timers (go-metrics): the
// node installs a sink that turns them into this histogram. The sink is
// process-wide, so nodes sharing a process (tests) share the Raft stages.
var stageSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "raftlock", Name: "stage_seconds",
	Help:    "Time spent in each stage of a write (see cluster/stages.go): http, propose, and Raft's leader_persist, commit, fsm_enqueue, fsm_apply, follower_persist, append_rpc.",
	Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, .1, .25, 1},
}, []string{"stage"})

// raftTimers maps hashicorp/raft's timer names to stages.
var raftTimers = map[string]string{
	"raft.leader.dispatchLog":            "leader_persist",
	"raft.commitTime":                    "commit",
	"raft.fsm.enqueue":                   "fsm_enqueue",
	"raft.fsm.applyBatch":                "fsm_apply",
	"raft.rpc.appendEntries.storeLogs":   "follower_persist",
	"raft.replication.appendEntries.rpc": "append_rpc",
}

var installStages sync.Once

// stageSink is the go-metrics sink of Raft's timers: it keeps the stages
// above and drops the rest.
type stageSink struct{ *armon.BlackholeSink }

func (stageSink) AddSample(key []string, val float32) {
	if len(key) > 1 {
		if stage, ok := raftTimers[strings.Join(key[1:], ".")]; ok { // key[0] is the service name
			stageSeconds.WithLabelValues(stage).Observe(float64(val) / 1e6) // microseconds
		}
	}
}

func (s stageSink) AddSampleWithLabels(key []string, val float32, _ []armon.Label) {
	s.AddSample(key, val)
}

// registerStages installs the sink (once per process) and adds the
// histogram to a node's registry.
func registerStages(reg *prometheus.Registry) {
	installStages.Do(func() {
		_, _ = armon.NewGlobal(&armon.Config{ServiceName: "raftlock", TimerGranularity: time.Microsecond, FilterDefault: true}, stageSink{&armon.BlackholeSink{}})
	})
	reg.MustRegister(stageSeconds)
}

// timeHTTP measures the http stage of API calls.
func timeHTTP(h http.Handler) http.Handler {
	obs := stageSeconds.WithLabelValues("http")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		obs.Observe(time.Since(start).Seconds())
	})
}
