package cluster_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/cluster/clustertest"
)

// Every invalid input gets invalid_argument naming the field, over plain
// Connect JSON as any language would send it, and changes nothing.
func TestInvalidInputIsRefusedAndChangesNothing(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	mustAcquire(t, ctx, c.LockClient(leader), "holder", "held")
	before := c.Node(leader).Status()

	base := "http://" + c.Addr(c.Followers()[0]) + "/raftlock.v1.LockService/"
	long := strings.Repeat("k", 513)
	var many []string
	for i := range 65 {
		many = append(many, strings.Repeat("x", i+1))
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct {
		name, method, body, field string
	}{
		{"no keys", "Acquire", `{"ownerId":"a"}`, "keys"},
		{"empty key", "Acquire", `{"keys":["a",""]}`, "keys[1]"},
		{"oversize key", "Acquire", `{"keys":["` + long + `"]}`, "keys[0]"},
		{"NUL in key", "Acquire", `{"keys":["a\u0000b"]}`, "keys[0]"},
		{"too many keys", "Acquire", `{"keys":` + string(manyJSON) + `}`, "keys"},
		{"negative expire", "Acquire", `{"keys":["held"],"expire":"-1s"}`, "expire"},
		{"negative wait", "Acquire", `{"keys":["held"],"waitTimeout":"-0.5s"}`, "wait_timeout"},
		{"huge wait", "Acquire", `{"keys":["held"],"waitTimeout":"7200s"}`, "wait_timeout"},
		{"unknown field", "Acquire", `{"keys":["held"],"ownerID":"holder"}`, "ownerID"},
		{"oversize owner", "Release", `{"keys":["held"],"ownerId":"` + strings.Repeat("o", 257) + `"}`, "owner_id"},
		{"oversize request id", "ReleaseAll", `{"ownerId":"holder","requestId":"` + strings.Repeat("r", 129) + `"}`, "request_id"},
		{"wrong type", "Release", `{"keys":"held"}`, "keys"},
		{"missing key", "GetLock", `{}`, "key"},
		{"limit too high", "ListLocks", `{"limit":100000}`, "limit"},
		{"body over the limit", "Release", `{"keys":["held"],"ownerId":"` + strings.Repeat("o", 300<<10) + `"}`, "request body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(base+tc.method, "application/json", bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var e struct{ Code, Message string }
			_ = json.Unmarshal(raw, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Code != "invalid_argument" {
				t.Fatalf("status %d body %s, want 400 invalid_argument", resp.StatusCode, raw)
			}
			if !strings.Contains(e.Message, tc.field) {
				t.Fatalf("message %q does not name %q", e.Message, tc.field)
			}
		})
	}
	after := c.Node(leader).Status()
	if after.Locks != before.Locks || after.Waiters != before.Waiters {
		t.Fatalf("locks/waiters changed from %d/%d to %d/%d", before.Locks, before.Waiters, after.Locks, after.Waiters)
	}
	if l := getLock(t, ctx, c.LockClient(leader), "held"); l.GetOwnerId() != "holder" {
		t.Fatalf("held lock changed: %+v", l)
	}
}
