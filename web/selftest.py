#!/usr/bin/env python3
"""Drive headless Chromium through the page's self-tests and save a screenshot of each page.

Serves web/www on 127.0.0.1 (a secure context, as WebGPU needs), starts
`chromium-headless-shell --enable-unsafe-webgpu` with the DevTools protocol on a pipe (no
WebSocket library needed), and for each page: opens it, awaits `window.selftest(args)` (the
page runs its own checks through the wasm library and resolves to {ok, checks: [...]}),
prints each check, and saves a full-page PNG. Exits 1 if any check fails or a page errs.

Usage: selftest.py --www DIR --shots DIR --native METRICS.json [--browser PATH] [--timeout S]
"""

import argparse
import base64
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

PAGES = ["playground.html", "train.html", "parity.html"]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out)."""

    def __init__(self, path, profile, webgpu):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        args = [
            path, "--no-sandbox", *(["--enable-unsafe-webgpu"] if webgpu else []), "--remote-debugging-pipe",
            f"--user-data-dir={profile}", "--window-size=1280,900", "--hide-scrollbars",
            # Nothing outside 127.0.0.1 is reachable here: keep Chromium from trying.
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-quic", "--no-first-run", "about:blank",
        ]
        # close_fds would close 3 and 4 again after preexec_fn has put the pipes there.
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            m = self.recv(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def recv(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser exited")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def wait_event(self, method, timeout):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self.recv(deadline))

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def console_lines(events):
    """What the page logged, and any uncaught exception (for a failure's report)."""
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled":
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e.get("method") == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
    return out


def run_pages(a, base, args, webgpu):
    """Each page's self-test in one browser; returns the number of failed checks."""
    failed = 0
    suffix = "" if webgpu else "-no-webgpu"
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(a.browser, profile, webgpu)
        try:
            target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            b.send("Page.enable", session=session)
            b.send("Runtime.enable", session=session)
            for page in PAGES:
                b.events.clear()
                t0 = time.time()
                b.send("Page.navigate", {"url": base + page}, session=session)
                b.wait_event("Page.loadEventFired", 60)
                expr = f"window.selftest({json.dumps(args)})"
                r = b.send("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                           session=session, timeout=a.timeout)
                took = time.time() - t0
                if "exceptionDetails" in r:
                    d = r["exceptionDetails"]
                    print(f"FAIL {page}: {d.get('exception', {}).get('description', d.get('text'))}")
                    for line in console_lines(b.events):
                        print(f"  console: {line}")
                    failed += 1
                else:
                    result = r["result"]["value"]
                    for c in result["checks"]:
                        print(f"{'pass' if c['pass'] else 'FAIL'} {page}: {c['name']}: {c['detail']}")
                        failed += not c["pass"]
                    print(f"     {page}: {result.get('summary', '')} ({took:.1f} s)")
                # Let the page draw what it computed, then take all of it.
                time.sleep(0.5)
                m = b.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
                shot = b.send("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": m["width"], "height": m["height"], "scale": 1},
                }, session=session)
                path = os.path.join(a.shots, page.replace(".html", suffix + ".png"))
                with open(path, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
        finally:
            b.close()
    return failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--www", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--native", required=True, help="metrics.json of the native CPU run")
    ap.add_argument("--browser", default="chromium-headless-shell")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    native = json.load(open(a.native))
    args = {"native_epochs": native["runs"][0]["epochs"]}
    handler = functools.partial(Quiet, directory=a.www)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    os.makedirs(a.shots, exist_ok=True)

    failed = 0
    # With WebGPU (the browser's adapter runs everything), then without an adapter (as on a
    # browser without WebGPU support: the pages must say so and run on the CPU backend).
    for webgpu in (True, False):
        print(f"-- {'with WebGPU' if webgpu else 'without a WebGPU adapter'}")
        failed += run_pages(a, base, dict(args, webgpu=webgpu), webgpu)
    server.shutdown()
    print(f"screenshots: {os.path.abspath(a.shots)}")
    if failed:
        print(f"{failed} check(s) failed")
        sys.exit(1)
    print("every self-test passed")


if __name__ == "__main__":
    main()
