"""A headless Chromium driven over the DevTools protocol on a pipe (no websocket client needed).

`inspect_page(url, screenshot)` loads a page, waits for its images, and returns what the page's own
script saw plus every console error, uncaught exception and network request, then saves a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]

PROBE = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  return {
    title: document.title,
    images: images.map(i => ({alt: i.alt, natural: [i.naturalWidth, i.naturalHeight], box: box(i)})),
    tables: [...document.querySelectorAll('table')].map(t => ({rows: t.rows.length, box: box(t)})),
    links: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'))
  };
})()"""


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """Chromium with `--remote-debugging-pipe`: commands go to its fd 3, NUL-separated JSON comes back on fd 4."""

    def __init__(self, binary: str, log_path: Path):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_browser, self._send_fd = os.pipe()
        self._recv_fd, from_browser = os.pipe()
        # move the child's ends above 10 so the shell's 3</4> redirections cannot clobber them
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser))
        os.close(to_browser)
        os.close(from_browser)
        script = f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            ["bash", "-c", script, "chromium", binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        os.close(child_in)
        os.close(child_out)
        self.events: list[dict[str, Any]] = []
        self._replies: queue.Queue = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._recv_fd, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                (self._replies.put(message) if "id" in message else self.events.append(message))
        self._replies.put(None)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._replies.get(timeout=timeout)
            if reply is None:
                raise RuntimeError(f"chromium exited while waiting for {method}")
            if reply["id"] == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def wait_event(self, name: str, after: int = 0, timeout: float = 60) -> dict[str, Any]:
        """The first event called `name` among those received after the first `after` events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[after:]:
                if event.get("method") == name:
                    return event
            time.sleep(0.05)
        raise TimeoutError(f"no {name} within {timeout}s")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, queue.Empty, OSError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._send_fd)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def inspect_page(url: str, screenshot: Path, width: int = 1280) -> dict[str, Any]:
    """Load `url`; return the probe's findings, `errors` (console/exception/log) and `requests` (URLs)."""
    browser = DevTools(executable() or "chromium", screenshot.with_suffix(".log"))
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call("Emulation.setDeviceMetricsOverride", session, width=width, height=900, deviceScaleFactor=1,
                     mobile=False)
        seen = len(browser.events)
        browser.call("Page.navigate", session, url=url)
        browser.wait_event("Page.loadEventFired", after=seen)
        found = browser.call("Runtime.evaluate", session, expression=PROBE, awaitPromise=True,
                             returnByValue=True)["result"]["value"]
        size = browser.call("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = browser.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
    errors = []
    for e in browser.events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("text", "exception"))
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
            errors.append(p["entry"].get("text", ""))
    requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    return {**found, "errors": errors, "requests": requests}
