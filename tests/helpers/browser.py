"""Load a page in headless Chromium over the DevTools protocol: images, console errors, requests, screenshot.

A small client (websocket-client) instead of a browser-automation package: it drives the system's
chromium and downloads nothing.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars"]

IMAGES_JS = ("JSON.stringify(Array.from(document.images).map(i => ({src: i.src.slice(0, 40), "
             "complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class _DevTools:
    """Commands and the events that arrive between them, over one page's websocket."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))


def _devtools_port(user_dir: Path, proc: subprocess.Popen, timeout: float = 60) -> int:
    marker, deadline = user_dir / "DevToolsActivePort", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr.read()[-500:]!r}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def check_page(page: Path, screenshot: Path, chromium: str, width: int = 1280) -> dict[str, Any]:
    """Open `page`; return its images (natural sizes), errors (console, exceptions, failed loads) and the
    URLs it requested; save a full-page screenshot."""
    user_dir = Path(tempfile.mkdtemp(prefix="reslab-chromium-"))
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={user_dir}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = _devtools_port(user_dir, proc)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        tools = _DevTools(next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        tools.call("Page.navigate", url=page.resolve().as_uri())
        tools.wait_for("Page.loadEventFired")
        images = json.loads(tools.call("Runtime.evaluate", expression=IMAGES_JS, returnByValue=True)["result"]["value"])
        size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": width, "height": min(size["height"], 30000), "scale": 1})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        tools.call("Runtime.evaluate", expression="1")  # drain events queued after load
        tools.ws.close()
        return {"images": images, "errors": _errors(tools.events), "requests": _requests(tools.events)}
    finally:
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(user_dir, ignore_errors=True)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            out.append(f"load failed: {params.get('errorText')}")
    return out


def _requests(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"][:80] for e in events if e.get("method") == "Network.requestWillBeSent"]
