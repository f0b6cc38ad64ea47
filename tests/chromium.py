"""Headless Chromium driven through the DevTools protocol over a pipe: no Selenium, no Playwright.

`--remote-debugging-pipe` makes Chromium read JSON commands from file descriptor 3
and write replies and events to descriptor 4, each message ending in a NUL byte.
That is enough to open a page, wait for it to load, run JavaScript in it, collect
every failed request and script error, and take a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

# Flags that work as root in a container (TOOLCHAIN.md); every host name fails to resolve,
# so nothing a page shows can come from the network.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--mute-audio",
]


def find_chromium() -> str:
    """The Chromium executable: found, or installed with apt-get where that is possible (root, Debian);
    otherwise the test is skipped with the reason, or failed in CI (where .ci/run installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       env=env, capture_output=True, timeout=900)
        found = shutil.which("chromium")
        if found:
            return found
    reason = "headless Chromium is not installed and cannot be installed here (needs root and apt-get: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class Page:
    """One tab. Events are kept as they arrive; `failures` and `errors` are what went wrong loading it."""

    def __init__(self, browser: "Chromium", session: str):
        self.browser, self.session = browser, session
        self.requests: dict[str, str] = {}
        self.pending: set[str] = set()  # requests still loading
        self.last_event = 0.0  # time.monotonic() of the last network event
        self.failures: list[str] = []  # "url: net::ERR_..." for every request that failed
        self.errors: list[str] = []  # uncaught script errors and console.error lines

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method.startswith("Network."):
            self.last_event = time.monotonic()
        if method == "Network.requestWillBeSent":
            self.requests[params["requestId"]] = params["request"]["url"]
            self.pending.add(params["requestId"])
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            self.pending.discard(params["requestId"])
        if method == "Network.loadingFailed" and not params.get("canceled"):
            url = self.requests.get(params["requestId"], "?")
            self.failures.append(f"{url}: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"{details.get('url', '')}:{details.get('lineNumber', '?')}: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))

    def goto(self, url: str, settle: float = 0.5, timeout: float = 60, quiet: float = 0.1) -> None:
        """Open a page and wait for its load event, then for the network to fall quiet: no request
        loading and none started or finished for `quiet` seconds, or `settle` seconds at most."""
        self.requests.clear()
        self.pending.clear()
        self.failures.clear()
        self.errors.clear()
        self.browser.loaded.discard(self.session)
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while self.session not in self.browser.loaded:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading within {timeout} s")
            self.browser.pump(0.2, until=lambda: self.session in self.browser.loaded)
        # Scripts that run after load (the diagrams) and their requests.
        settled = time.monotonic() + settle
        self.last_event = time.monotonic()
        while time.monotonic() < settled:
            if not self.pending and time.monotonic() - self.last_event >= quiet:
                return
            self.browser.pump(min(quiet, settled - time.monotonic()))

    def evaluate(self, expression: str):
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]}... raised {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20):
        """Poll a JavaScript expression until it is truthy (after a redirect, say); return its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is between documents
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} stayed false for {timeout} s")
            self.browser.pump(0.2)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Emulate a screen: a desktop window, or a phone (mobile: touch, its viewport meta tag honoured)."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": mobile})

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], 6000), "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


class Chromium:
    def __init__(self, executable: str, profile: Path, width: int = 1280, height: int = 900):
        to_chrome, self._writer = os.pipe()
        self._reader, from_chrome = os.pipe()

        def as_fds_3_and_4():  # in the child, before exec: Chromium expects the pipe on fds 3 and 4
            a = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 100)
            b = fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 100)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=as_fds_3_and_4,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self.width, self.height = width, height
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.pages: dict[str, Page] = {}
        self.loaded: set[str] = set()

    def pump(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Read and dispatch messages for up to `seconds`, or until `until()` holds after a message."""
        deadline = time.monotonic() + seconds
        while True:
            if until is not None and until():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self._reader], [], [], left)
            if not ready:
                return
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed its DevTools pipe (exit status {self.process.poll()})")
            self._buffer += chunk
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict) -> None:
        if "id" in message:
            self._replies[message["id"]] = message
            return
        page = self.pages.get(message.get("sessionId"))
        if message.get("method") == "Page.loadEventFired" and page is not None:
            self.loaded.add(page.session)
        if page is not None:
            page.event(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        wanted = self._next_id
        while wanted not in self._replies:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            self.pump(0.2, until=lambda: wanted in self._replies)
        reply = self._replies.pop(wanted)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        self.pages[session] = page
        for domain in ("Page", "Runtime", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._writer)
        os.close(self._reader)
