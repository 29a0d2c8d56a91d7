package cluster

import "testing"

// A key counts under its first depth segments, separator included; a key
// with fewer segments counts whole; past the cap, prefixes count as other,
// and prefixes already labelled keep their label.
func TestLockMetricsPrefix(t *testing.T) {
	m := &lockMetrics{depth: 2, sep: "/", maxPrefixes: 3, prefixes: map[string]bool{}}
	for _, tc := range []struct{ key, want string }{
		{"tenant/a/stock/1", "tenant/a/"},
		{"tenant/a/stock/2", "tenant/a/"},
		{"tenant/b", "tenant/b"},
		{"flat", "flat"},
		{"tenant/c/x", otherPrefix}, // a fourth prefix
		{"tenant/b", "tenant/b"},
		{"flat", "flat"},
	} {
		if got := m.prefix(tc.key); got != tc.want {
			t.Errorf("prefix(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	one := &lockMetrics{depth: 1, sep: ":", maxPrefixes: 100, prefixes: map[string]bool{}}
	if got := one.prefix("stock:prod_123"); got != "stock:" {
		t.Errorf("depth 1: prefix(stock:prod_123) = %q, want stock:", got)
	}
}
