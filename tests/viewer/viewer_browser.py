"""A tiny headless-Chromium driver for the web-mode test (Chrome DevTools protocol over aiohttp).

``chromium --screenshot --virtual-time-budget`` fast-forwards virtual time and shoots the
page before trame's websocket delivers the first rendered frame, so the test drives the
browser instead: load the page, poll the DOM until the render view's canvas/img is laid
out, then capture a screenshot. aiohttp comes with trame (wslink), so no extra package.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Largest canvas or img on the page: [tag, width, height], or null.
VIEW_PROBE = """(() => {
  const els = [...document.querySelectorAll('canvas, img')]
    .map(e => [e.tagName.toLowerCase(), e.clientWidth, e.clientHeight])
    .sort((a, b) => b[1] * b[2] - a[1] * a[2]);
  return JSON.stringify(els.length ? els[0] : null);
})()"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


async def _capture(ws_url: str, url: str, timeout: float, settle: float) -> tuple[bytes, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            counter = 0

            async def call(method: str, **params: Any) -> dict[str, Any]:
                nonlocal counter
                counter += 1
                await ws.send_str(json.dumps({"id": counter, "method": method, "params": params}))
                while True:
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("id") == counter:
                        return msg.get("result", {})

            await call("Page.enable")
            await call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            view = None
            while time.monotonic() < deadline:
                res = await call("Runtime.evaluate", expression=VIEW_PROBE, returnByValue=True)
                view = json.loads(res.get("result", {}).get("value") or "null")
                if view and view[1] >= 100 and view[2] >= 100:
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(settle)  # let the first server-rendered frame arrive
            shot = await call("Page.captureScreenshot", format="png")
            return base64.b64decode(shot["data"]), view


def screenshot_page(url: str, out: Path, profile: Path, *, size: tuple[int, int] = (800, 600),
                    timeout: float = 20.0, settle: float = 2.0) -> Any:
    """Load ``url`` in headless Chromium, wait for the render view, write a PNG to ``out``.

    Returns:
        The largest canvas/img element as ``[tag, width, height]``, or None if none appeared.
    """
    import urllib.request

    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no chromium")
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                             "--remote-debugging-port=0", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        t0 = time.monotonic()
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() - t0 > timeout or proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
        page = next(t for t in targets if t.get("type") == "page")
        png, view = asyncio.run(_capture(page["webSocketDebuggerUrl"], url, timeout, settle))
        out.write_bytes(png)
        return view
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate ``proc``; kill it if it has not exited after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
