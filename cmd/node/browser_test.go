//go:build browser

package main

// The web console (/ui, issue 17) in a real browser: headless Chromium
// (Debian's chromium package) driven over the DevTools protocol. Run with
// `make ui-test` (go test -tags browser -run TestConsole ./cmd/node).
// UPDATE_SCREENSHOT=1 also copies the screenshot to docs/console.png.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// chromium finds the browser, or skips: CHROMIUM names it, else chromium
// on the PATH. In CI (CI set) a missing browser fails instead.
func chromium(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on the PATH (make ui-test installs it)")
	}
	t.Skip("no chromium on the PATH (make ui-test installs it)")
	return ""
}

// browser starts a headless Chromium for the test and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // the test may run as root (CI containers)
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		// The test cluster's certificates come from a CA made for the test.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitDOM polls a JavaScript expression in the page until it is true.
func waitDOM(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	last := ""
	testcluster.Poll(t, testcluster.DefaultWait, 50*time.Millisecond, what, func() bool {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			last = err.Error()
			return false
		}
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#error").hidden ? "" : document.querySelector("#error").textContent) + " | " + document.querySelector("main").innerText.slice(0, 400)`))
		last = text
		return ok
	}, &last)
}

// rowExpr is a JavaScript test of the lock table row of key.
func rowExpr(key, test string) string {
	return fmt.Sprintf(`(() => { const r = document.querySelector('#locks tr[data-key=%q]'); return %s; })()`, key, test)
}

// The console served by a follower shows the members, then a lock the test
// acquires through the API (owner, waiters), its key page with the queue in
// order, and the lock gone once released: the page follows the watch
// stream. The page is served with a CSP that forbids inline scripts, and
// the screenshot is kept in the test's artifacts.
func TestConsoleFollowsLocks(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := t.Context()
	hc := c.HTTPClient()
	leader := c.Leader()
	fol := c.Followers()[0]
	call := func(method, body string) {
		t.Helper()
		if _, err := postJSON(ctx, hc, c.URL(leader), method, body); err != nil {
			t.Fatal(err)
		}
	}
	// Waiters wait as long as the test needs: no client timeout.
	waitClient := &http.Client{Transport: hc.Transport}
	background := func(body string) chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := postJSON(ctx, waitClient, c.URL(leader), "Acquire", body)
			ch <- err
		}()
		return ch
	}

	resp, err := hc.Get(c.URL(fol) + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("/ui/: %s, Content-Security-Policy %q", resp.Status, resp.Header.Get("Content-Security-Policy"))
	}

	tab := browser(t)
	if err := chromedp.Do(tab, chromedp.Navigate(c.URL(fol)+"/ui/")); err != nil {
		t.Fatal(err)
	}
	waitDOM(t, tab, "three ready members, one leader", `document.querySelectorAll('#members tbody tr').length === 3 &&
		[...document.querySelectorAll('#members tbody tr td:last-child')].every(td => td.textContent === "ready") &&
		document.querySelectorAll('#members tbody tr.leader').length === 1`)
	waitDOM(t, tab, "the watch stream live", `document.querySelector('#stream').textContent === "live"`)

	waitDOM(t, tab, "no error shown", `document.querySelector('#error').hidden`)
	// A few locks, holders and waiters.
	call("Acquire", `{"keys":["stock:prod_123"],"ownerId":"checkout-7f3a","expire":"60s"}`)
	call("Acquire", `{"keys":["cart:42"],"ownerId":"cart-svc-2","expire":"30s"}`)
	call("Acquire", `{"keys":["invoice:2026-118"],"ownerId":"billing-1","expire":"300s"}`)
	waitDOM(t, tab, "stock:prod_123 held by checkout-7f3a", rowExpr("stock:prod_123", `r !== null && r.querySelector('.owner').textContent === "checkout-7f3a"`))
	w1 := background(`{"keys":["stock:prod_123"],"ownerId":"checkout-91c2","expire":"60s","waitTimeout":"60s"}`)
	waitDOM(t, tab, "one waiter", rowExpr("stock:prod_123", `r.querySelector('.waiters').textContent === "1"`))
	w2 := background(`{"keys":["stock:prod_123"],"ownerId":"checkout-b410","expire":"60s","waitTimeout":"60s"}`)
	waitDOM(t, tab, "two waiters", rowExpr("stock:prod_123", `r.querySelector('.waiters').textContent === "2"`))

	// The key page: the holder and the queue in order.
	if err := chromedp.Do(tab, chromedp.Navigate(c.URL(fol)+"/ui/#/key/"+"stock%3Aprod_123")); err != nil {
		t.Fatal(err)
	}
	waitDOM(t, tab, "the key page: holder and queue in order", `document.querySelector('#k-holder .holder') !== null &&
		document.querySelector('#k-holder .holder').textContent === "checkout-7f3a" &&
		[...document.querySelectorAll('#k-queue .waiter')].map(li => li.textContent.split(" ")[0]).join(",") === "checkout-91c2,checkout-b410"`)

	// A hand-off: the first waiter gets the key.
	call("Release", `{"keys":["stock:prod_123"],"ownerId":"checkout-7f3a"}`)
	if err := <-w1; err != nil {
		t.Fatal(err)
	}
	waitDOM(t, tab, "the hand-off on the key page", `document.querySelector('#k-holder .holder').textContent === "checkout-91c2" &&
		document.querySelectorAll('#k-queue .waiter').length === 1 &&
		[...document.querySelectorAll('#k-history li')].some(li => li.textContent.includes("handed_off checkout-91c2"))`)
	keyShot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "console-key.png"), keyShot, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(c.URL(fol)+"/ui/#/")); err != nil {
		t.Fatal(err)
	}
	waitDOM(t, tab, "the table after the hand-off", rowExpr("stock:prod_123", `r !== null && r.querySelector('.owner').textContent === "checkout-91c2" && r.querySelector('.waiters').textContent === "1"`))

	if os.Getenv("UPDATE_SCREENSHOT") != "" {
		traffic(t, ctx, hc, c.URL(leader))
	}
	waitDOM(t, tab, "the members' lock counts", `[...document.querySelectorAll('#members tbody tr td:nth-child(7)')].every(td => td.textContent === "3")`)
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "console.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if os.Getenv("UPDATE_SCREENSHOT") != "" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Released, the locks leave the table.
	call("Release", `{"keys":["stock:prod_123"],"ownerId":"checkout-91c2"}`)
	if err := <-w2; err != nil {
		t.Fatal(err)
	}
	call("Release", `{"keys":["stock:prod_123"],"ownerId":"checkout-b410"}`)
	call("Release", `{"keys":["cart:42"],"ownerId":"cart-svc-2"}`)
	call("Release", `{"keys":["invoice:2026-118"],"ownerId":"billing-1"}`)
	waitDOM(t, tab, "an empty lock table", `document.querySelectorAll('#locks tbody tr').length === 0`)
}

// js runs a statement in the page.
func js(t *testing.T, tab context.Context, stmt string) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Evaluate[chromedp.Void]("(() => { "+stmt+" })()")); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// With tokens on (and TLS), the console without a token shows the
// server's refusal; with a read token it shows the locks but its
// ForceRelease is refused (the page shows why); with an admin token the
// ForceRelease frees the key and the table loses it.
func TestConsoleTokens(t *testing.T) {
	viewer, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ops, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, 3, testcluster.WithTokens(
		tokens.Token{Name: "viewer", SHA256: tokens.Hash(viewer), Verbs: []string{tokens.VerbRead}, Prefixes: []string{"stock:"}},
		tokens.Token{Name: "ops", SHA256: tokens.Hash(ops), Verbs: []string{tokens.VerbRead, tokens.VerbAdmin}}))
	ctx := t.Context()
	leader := c.Leader()
	if _, err := postJSON(ctx, c.HTTPClient(), c.URL(leader), "Acquire", `{"keys":["stock:tls"],"ownerId":"w1","expire":"300s"}`); err != nil {
		t.Fatal(err)
	}
	page := c.URL(leader) + "/ui/"
	tab := browser(t)
	if err := chromedp.Do(tab, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitDOM(t, tab, "the refusal without a token", `document.querySelector('#error').textContent.includes("unauthenticated")`)
	setToken := func(secret, prefix string) {
		t.Helper()
		js(t, tab, fmt.Sprintf(`document.querySelector('#token').value = %q; document.querySelector('#prefix').value = %q; document.querySelector('#token-form').requestSubmit();`, secret, prefix))
	}
	useToken := func(secret, prefix string) {
		t.Helper()
		setToken(secret, prefix)
		waitDOM(t, tab, "the stream live with the token", `document.querySelector('#stream').textContent === "live"`)
	}
	// The viewer may read only under stock:, so it must watch there.
	setToken(viewer, "")
	waitDOM(t, tab, "the refusal of a watch of every key", `document.querySelector('#error').textContent.includes("may watch only under the prefixes")`)
	useToken(viewer, "stock:")
	waitDOM(t, tab, "the lock, seen with a read token", rowExpr("stock:tls", `r !== null && r.querySelector('.owner').textContent === "w1"`))
	waitDOM(t, tab, "three members", `document.querySelectorAll('#members tbody tr').length === 3`)

	js(t, tab, `location.hash = "#/key/" + encodeURIComponent("stock:tls");`)
	waitDOM(t, tab, "the key page", `!document.querySelector('#keypage').hidden && document.querySelector('#k-holder .holder') !== null`)
	js(t, tab, `document.querySelector('#k-force').click(); document.querySelector('#k-force').click();`)
	waitDOM(t, tab, "ForceRelease refused for the read token", `document.querySelector('#error').textContent.includes("permission_denied")`)
	if got, err := postJSON(ctx, c.HTTPClient(), c.URL(leader), "GetLock", `{"key":"stock:tls"}`); err != nil || !strings.Contains(got, `"w1"`) {
		t.Fatalf("after the refused ForceRelease: %s %v, want stock:tls still held by w1", got, err)
	}

	useToken(ops, "")
	waitDOM(t, tab, "the key page again", `!document.querySelector('#keypage').hidden && document.querySelector('#k-holder .holder') !== null`)
	js(t, tab, `document.querySelector('#k-force').click(); document.querySelector('#k-force').click();`)
	waitDOM(t, tab, "ForceRelease done with the admin token", `document.querySelector('#k-status').textContent === "force released 1 lock(s)"`)
	waitDOM(t, tab, "the key free", `document.querySelector('#k-holder dd').textContent.startsWith("none")`)
}

// traffic makes a few seconds of hand-offs for the screenshot's charts:
// a holder, a waiter queued behind it, the hand-off, the release; paced by
// a ticker (load, not a wait for a state).
func traffic(t *testing.T, ctx context.Context, hc *http.Client, url string) {
	t.Helper()
	call := func(method, body string) error {
		_, err := postJSON(ctx, hc, url, method, body)
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range 16 {
		<-tick.C
		key := fmt.Sprintf("session:u%d", i%4)
		if err := call("Acquire", fmt.Sprintf(`{"keys":[%q],"ownerId":"web-%d","expire":"30s"}`, key, i)); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			got <- call("Acquire", fmt.Sprintf(`{"keys":[%q],"ownerId":"worker-%d","expire":"30s","waitTimeout":"30s"}`, key, i))
		}()
		last := ""
		testcluster.Poll(t, testcluster.DefaultWait, 10*time.Millisecond, "the waiter queued", func() bool {
			out, err := postJSON(ctx, hc, url, "GetLock", fmt.Sprintf(`{"key":%q}`, key))
			last = out
			return err == nil && strings.Contains(out, `"waiters":1`)
		}, &last)
		for range i % 3 { // let the queue grow a little
			<-tick.C
		}
		if err := call("Release", fmt.Sprintf(`{"keys":[%q],"ownerId":"web-%d"}`, key, i)); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if err := call("Release", fmt.Sprintf(`{"keys":[%q],"ownerId":"worker-%d"}`, key, i)); err != nil {
			t.Fatal(err)
		}
	}
}
