"""DumpLab in a Jupyter server: the `jupyter-server-proxy` entry point (extra `[jupyter]`).

With `pip install dumplab[jupyter]` in the image JupyterHub spawns, each user's Jupyter server
shows "DumpLab" in its launcher and proxies the console at `/user/NAME/dumplab/`: jupyter-server-proxy
starts `dumplab serve` on a free loopback port when the user first opens it, and JupyterHub
does the logins, the per-user servers (its Kubernetes spawner scales them out) and the culling
of idle ones. See docs/CLASSROOM.md.

The console is served behind that path prefix: its page computes its websocket and static URLs
relative to itself, and `--behind-proxy` accepts the public host name that the Jupyter server
forwards (the server still listens on 127.0.0.1 only, reachable through Jupyter's login).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ICON = Path(__file__).with_name("dumplab.svg")
# Where a user's sessions go, relative to the Jupyter server's directory (the user's home).
DEFAULT_WORKDIR = "dumplab-classroom"


def setup_dumplab() -> dict[str, Any]:
    """jupyter-server-proxy's server specification for DumpLab."""
    workdir = os.environ.get("DUMPLAB_WORKDIR", DEFAULT_WORKDIR)
    return {
        "command": [sys.executable, "-m", "console.cli", "serve", "--host", "127.0.0.1",
                    "--port", "{port}", "--workdir", workdir, "--behind-proxy",
                    "--max-sessions", os.environ.get("DUMPLAB_MAX_SESSIONS", "4")],
        "timeout": 60,
        "absolute_url": False,  # the proxy strips /dumplab/: the console serves / as usual
        "new_browser_tab": True,
        "launcher_entry": {"title": "DumpLab", "icon_path": str(ICON)},
    }
