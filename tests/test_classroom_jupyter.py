"""JupyterHub's path: a real `jupyter server` (token auth on) with jupyter-server-proxy and
DumpLab's server specification proxies the console at /dumplab/; the page loads, the
websocket opens through the proxy, and the console draws its first screen."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from test_serve import free_port

from console.classroom.jupyter import setup_dumplab

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "jupyter-test-token"
HAVE_PROXY = importlib.util.find_spec("jupyter_server_proxy") is not None

pytestmark = pytest.mark.timeout(120)


def test_the_entry_point_names_the_specification() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry = project["entry-points"]["jupyter_serverproxy_servers"]["dumplab"]
    assert entry == "console.classroom.jupyter:setup_dumplab"
    assert any(r.startswith("jupyter-server-proxy") for r in
               project["optional-dependencies"]["jupyter"])
    spec = setup_dumplab()
    assert spec["command"][:4] == [sys.executable, "-m", "console.cli", "serve"]
    assert "{port}" in spec["command"] and "--behind-proxy" in spec["command"]
    assert Path(spec["launcher_entry"]["icon_path"]).is_file()


@pytest.mark.skipif(not HAVE_PROXY or shutil.which("jupyter") is None,
                    reason="the [jupyter] extra (jupyter-server-proxy) is not installed")
def test_the_console_works_behind_jupyter_at_dumplab(tmp_path: Path) -> None:
    config = tmp_path / "jupyter_server_config.py"
    config.write_text("from console.classroom.jupyter import setup_dumplab\n"
                      "c.ServerProxy.servers = {'dumplab': setup_dumplab()}\n")
    port = free_port()
    log = tmp_path / "jupyter.log"
    with log.open("wb") as out:
        jupyter = subprocess.Popen(
            [shutil.which("jupyter") or "jupyter", "server", "--allow-root", "--no-browser",
             f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={TOKEN}",
             f"--config={config}"],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        page = fetch_when_up(f"{base}/dumplab/", jupyter, log)
        assert 'class="textual-terminal"' in page and 'src="static/js/textual.js"' in page
        # Without the token, Jupyter sends the browser to its login page, not to ours.
        with urllib.request.urlopen(f"{base}/dumplab/", timeout=10) as anonymous:
            assert "/login" in anonymous.geturl()
            assert "textual-terminal" not in anonymous.read().decode()
        static = urllib.request.Request(f"{base}/dumplab/static/js/textual.js",
                                        headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(static, timeout=10) as script:
            assert script.status == 200
        assert asyncio.run(first_screen(f"ws://127.0.0.1:{port}/dumplab/ws", base)) > 1000
        assert (tmp_path / "dumplab-classroom").is_dir()
    finally:
        jupyter.terminate()
        try:
            jupyter.wait(timeout=15)
        except subprocess.TimeoutExpired:
            jupyter.kill()
            jupyter.wait()


def fetch_when_up(url: str, process: subprocess.Popen[bytes], log: Path) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"jupyter server exited:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"no console at {url}:\n{log.read_text(errors='replace')}")
            time.sleep(0.5)


async def first_screen(url: str, origin: str) -> int:
    """Open the console's websocket through the proxy, as the page would; bytes drawn."""
    received = 0
    async with aiohttp.ClientSession() as client, client.ws_connect(
            f"{url}?width=100&height=30", origin=origin,
            headers={"Authorization": f"token {TOKEN}"}) as websocket:
        await websocket.send_str(json.dumps(["resize", {"width": 100, "height": 30}]))
        deadline = time.monotonic() + 30
        while received < 1000 and time.monotonic() < deadline:
            message = await websocket.receive(timeout=30)
            if message.type == aiohttp.WSMsgType.BINARY:
                received += len(message.data)
            elif message.type != aiohttp.WSMsgType.TEXT:
                break
    return received
