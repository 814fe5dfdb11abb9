"""Debian's Chromium, headless, for checking pages the project writes (a plain module).

Chromium's own flags, no driver: ``--dump-dom`` prints the DOM after the page has loaded,
``--screenshot`` writes a PNG of the window, ``--log-net-log`` records every request the
network stack starts. The page is opened as ``file://`` with every host name resolving to
nothing (``--host-resolver-rules``), so a page that needed the network would show it.

Missing Chromium: the caller skips with the reason, except under ``CI=true`` where it fails
(``make browser`` installs it: .ci/install-chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

DEFAULT: Final = "/usr/bin/chromium"
WINDOW: Final = (1200, 1600)


def chromium() -> str:
    """The Chromium binary (``TOLLGATE_CHROMIUM`` overrides), or skip / fail the test."""
    path = os.environ.get("TOLLGATE_CHROMIUM") or DEFAULT
    if os.access(path, os.X_OK):
        return path
    found = None if os.environ.get("TOLLGATE_CHROMIUM") else shutil.which("chromium")
    if found:
        return found
    reason = f"Debian's Chromium is not installed at {path} (`make browser` installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: the browser check must run")
    pytest.skip(reason)


def flags(profile: Path, netlog: Path | None = None) -> list[str]:
    """Headless, offline, no first-run or background work; its own profile directory."""
    out = [
        "--headless",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-color-profile=srgb",  # the chart's colours land in the PNG as written
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
    ]
    if netlog is not None:
        out.append(f"--log-net-log={netlog}")
    return out


def _run(binary: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        timeout=180,  # a hang guard, not a timing assertion
        check=False,
    )
    return done


def dump_dom(binary: str, page: Path, work: Path) -> tuple[str, Path]:
    """(the DOM Chromium built from ``page``, the net log of that run)."""
    netlog = work / "dom.netlog.json"
    done = _run(binary, [*flags(work / "profile-dom", netlog), "--dump-dom", page.as_uri()])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, netlog


def screenshot(binary: str, page: Path, work: Path) -> Path:
    """A PNG of ``page`` in a window of :data:`WINDOW`."""
    png = work / "page.png"
    done = _run(binary, [*flags(work / "profile-shot"), f"--screenshot={png}", page.as_uri()])
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
    return png


def page_requests(netlog: Path) -> list[str]:
    """URLs of the requests the page itself started (its frame's site is ``file://``);
    Chromium's own background requests (other network isolation keys) are not counted."""
    log = json.loads(netlog.read_text(encoding="utf-8"))
    names = {code: name for name, code in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if str(params.get("network_isolation_key", "")).startswith("file://"):
            urls.append(str(params["url"]))
    return urls
