#!/usr/bin/env python3
"""raftlock from Python with nothing but the standard library.

Calls a raftlock node over the Connect JSON protocol (one HTTP POST per call)
with urllib: acquire, get, refresh, release, and the error codes a caller
meets. Every step checks what the server answered and the script exits 1 if
anything is off, so CI runs it against a live node
(clients/python/run_example.sh).

    RAFTLOCK_URL=http://127.0.0.1:7070 python3 clients/python/example.py

RAFTLOCK_URL may list several nodes, comma-separated; a call that finds a node
unavailable is retried on the next one, with the same request id.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

NODES = [u.strip().rstrip("/") for u in os.environ.get("RAFTLOCK_URL", "http://127.0.0.1:7070").split(",") if u.strip()]
LOCK = "raftlock.v1.LockService"
CLUSTER = "raftlock.v1.ClusterService"


class RaftlockError(Exception):
    """A call answered with a Connect error: code ("aborted", ...) and message."""

    def __init__(self, code, message, http_status):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.http_status = code, message, http_status


def call(service, method, body, retry_for=10.0):
    """POSTs one call and returns (answer, headers).

    Network errors and `unavailable` are retried on the next node for up to
    retry_for seconds with the very same body, so a requestId in it keeps the
    retry exactly-once. Any other error raises RaftlockError.
    """
    data = json.dumps(body).encode()
    give_up = time.monotonic() + retry_for
    attempt = 0
    while True:
        url = f"{NODES[attempt % len(NODES)]}/{service}/{method}"
        req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}"), resp.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                code, message = err["code"], err.get("message", "")
            except (ValueError, KeyError):
                code, message = "unavailable" if e.code in (502, 503, 504) else "unknown", raw.decode(errors="replace")
            if code != "unavailable":
                raise RaftlockError(code, message, e.code) from None
            last = RaftlockError(code, message, e.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = RaftlockError("unavailable", f"{url}: {e}", 0)
        attempt += 1
        if time.monotonic() >= give_up:
            raise last
        time.sleep(min(0.05 * 2 ** attempt, 0.5))


failures = []


def check(what, ok, detail=""):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + detail}")
    if not ok:
        failures.append(what)


def expect_error(what, code, message, fn):
    """Runs fn, which must fail with this code (and message, when given)."""
    try:
        got = fn()
    except RaftlockError as e:
        check(what, e.code == code and (message is None or e.message == message),
              f"got {e.code}: {e.message!r}")
        return e
    check(what, False, f"no error, got {got}")
    return None


def main():
    key = f"py-example-{uuid.uuid4().hex[:8]}"
    print(f"raftlock at {', '.join(NODES)}; key {key!r}")

    status, headers = call(CLUSTER, "Status", {})
    print(f"node {status['id']} is {status['role']}, leader {status.get('leaderId')} at {headers.get('Raftlock-Leader')}")
    check("the node is ready", status.get("ready") is True, json.dumps(status))
    check("answers carry the Raftlock-Leader header", bool(headers.get("Raftlock-Leader")))

    print("acquire")
    rid = str(uuid.uuid4())
    got, _ = call(LOCK, "Acquire", {"keys": [key], "ownerId": "alice", "expire": "30s", "requestId": rid})
    token = got["fencingToken"]  # a uint64: a string in JSON
    check("alice holds the key", got["locks"][0]["ownerId"] == "alice", json.dumps(got))
    again, _ = call(LOCK, "Acquire", {"keys": [key], "ownerId": "alice", "expire": "30s", "requestId": rid})
    # The same grant (token, request id); expiresIn is counted from the
    # retry's arrival, so it can only be a little less.
    check("a retry with the same request id returns the first grant",
          again["fencingToken"] == token and again["requestId"] == rid and again["locks"][0]["ownerId"] == "alice",
          json.dumps(again))
    expect_error("a new acquire by alice's rival is still refused", "aborted", None,
                 lambda: call(LOCK, "Acquire", {"keys": [key], "ownerId": "mallory", "requestId": str(uuid.uuid4())}))

    print("error codes")
    expect_error("another owner: aborted", "aborted", f'Failed to acquire lock for key "{key}"',
                 lambda: call(LOCK, "Acquire", {"keys": [key], "ownerId": "bob"}))
    expect_error("a wait that runs out: deadline_exceeded", "deadline_exceeded", "Timed-out acquiring lock.",
                 lambda: call(LOCK, "Acquire", {"keys": [key], "ownerId": "bob", "waitTimeout": "0.5s",
                                                "requestId": str(uuid.uuid4())}))
    expect_error("a misspelt field: invalid_argument", "invalid_argument", None,
                 lambda: call(LOCK, "Acquire", {"keys": [key], "ownerID": "alice"}))
    expect_error("refresh by a non-holder: failed_precondition", "failed_precondition", None,
                 lambda: call(LOCK, "Refresh", {"keys": [key], "ownerId": "bob", "requestId": str(uuid.uuid4())}))
    stale = str(int(token) - 1)
    expect_error("release with a stale fencing token: failed_precondition", "failed_precondition", None,
                 lambda: call(LOCK, "Release", {"keys": [key], "ownerId": "alice", "fencingToken": stale,
                                                "requestId": str(uuid.uuid4())}))
    e = expect_error("an over-long expire: invalid_argument", "invalid_argument", None,
                     lambda: call(LOCK, "Acquire", {"keys": [key], "expire": "720000s"}))
    check("its message names the field", e is not None and e.message.startswith("expire:"), e and e.message)

    print("get and refresh")
    lock, _ = call(LOCK, "GetLock", {"key": key})
    check("GetLock shows alice and her token", lock["lock"]["ownerId"] == "alice" and lock["lock"]["fencingToken"] == token,
          json.dumps(lock))
    refreshed, _ = call(LOCK, "Refresh", {"keys": [key], "ownerId": "alice", "expire": "60s", "requestId": str(uuid.uuid4())})
    left = float(refreshed["locks"][0]["expiresIn"].rstrip("s"))
    check("Refresh extends the lock", 30 < left <= 60, json.dumps(refreshed))
    outcome, _ = call(LOCK, "GetRequestOutcome", {"requestId": rid})
    check("GetRequestOutcome remembers the grant",
          outcome["outcome"].get("state") == "REQUEST_STATE_SUCCEEDED" and outcome["outcome"].get("fencingToken") == token,
          json.dumps(outcome))

    print("release")
    released, _ = call(LOCK, "Release", {"keys": [key], "ownerId": "alice", "fencingToken": token, "requestId": str(uuid.uuid4())})
    check("alice's release frees the key", released.get("released") is True, json.dumps(released))
    released, _ = call(LOCK, "Release", {"keys": [key], "ownerId": "alice", "requestId": str(uuid.uuid4())})
    check("a second release answers released=false (left out of the JSON)", released.get("released", False) is False,
          json.dumps(released))
    lock, _ = call(LOCK, "GetLock", {"key": key})
    check("the key is free", "lock" not in lock, json.dumps(lock))
    got, _ = call(LOCK, "Acquire", {"keys": [key], "ownerId": "bob", "requestId": str(uuid.uuid4())})
    check("bob gets it with a larger fencing token", int(got["fencingToken"]) > int(token), json.dumps(got))
    count, _ = call(LOCK, "ReleaseAll", {"ownerId": "bob", "requestId": str(uuid.uuid4())})
    check("ReleaseAll frees bob's lock", count.get("releasedCount") == 1, json.dumps(count))

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RaftlockError as e:
        print(f"unexpected error: {e}")
        sys.exit(1)
