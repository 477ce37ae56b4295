"""The instructor's view (`dumplab serve --instructor-token TOKEN`) and the server's small
HTML pages (class full, the trainee's name).

`/instructor` is a plain HTML page: a table of the seats (trainee, LPAR state, lab and step,
score, last activity, dumps written), refreshed every few seconds, with three actions per
seat: inject a fault chosen from the catalogue, send a message to the trainee's Hardware
Messages, end the session. The token is checked with a constant-time compare on every
request; actions are POSTs from the same origin. No action takes free text to a shell or to
the command language: a fault is one of FAULTS, a message is shown as text.
"""

from __future__ import annotations

import hmac
import html
import time
from typing import Any, Protocol

from aiohttp import web

from console.classroom import channel
from console.classroom.channel import FAULTS


class ClassroomServer(Protocol):
    """What the instructor's page needs of the server (console/classroom/server.py), named
    here so that the page does not import the server that imports it."""

    config: Any  # server.ServeConfig
    seats: dict[str, Any]  # server.Seat by id

    def host_allowed(self, request: web.Request) -> bool: ...

    def origin_allowed(self, request: web.Request) -> bool: ...

    async def end_seat(self, seat: Any, reason: str) -> None: ...

TOKEN_COOKIE = "dumplab_instructor"
STYLE = """<style>
body { background: #0c181f; color: #e0e6ea; font-family: "Roboto Mono", menlo, monospace; }
table { border-collapse: collapse; } td, th { border: 1px solid #3a4a55; padding: 4px 8px; }
th { background: #12232d; } input, select, button { font-family: inherit; }
.box { max-width: 640px; margin: 10vh auto; padding: 32px; background: #12232d; }
</style>"""


def _page(title: str, body: str, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title>{meta}{STYLE}</head><body>{body}</body></html>")


def class_full_page(seats: int) -> str:
    return _page("DumpLab: the class is full", (
        f"<div class='box'><h2>The class is full</h2><p>All {seats} sessions of this "
        "classroom are in use. Ask the instructor, or try again when a trainee has left."
        "</p><button onclick='location.reload()'>Try again</button></div>"))


def name_page(bad: bool = False) -> str:
    warning = "<p>Use 1 to 40 letters, digits, spaces or . @ - _</p>" if bad else ""
    return _page("DumpLab: your name", (
        "<div class='box'><h2>DumpLab HMC</h2><form method='get' action=''>"
        f"<p>Your name, for the instructor:</p>{warning}<input name='name' maxlength='40' "
        "autofocus required> <button>Start</button></form></div>"))


# --------------------------------------------------------------------------------------------
# The instructor's page


def token_ok(request: web.Request, token: str) -> bool:
    given = (request.query.get("token") or request.cookies.get(TOKEN_COOKIE)
             or request.headers.get("X-Instructor-Token") or "")
    return hmac.compare_digest(given.encode(), token.encode())


def add_routes(app: web.Application, server: ClassroomServer) -> None:
    view = InstructorView(server)
    app.router.add_get("/instructor", view.page)
    app.router.add_get("/instructor/sessions.json", view.sessions_json)
    app.router.add_post("/instructor/{seat}/{action}", view.act)


class InstructorView:
    def __init__(self, server: ClassroomServer) -> None:
        self.server = server

    def _check(self, request: web.Request) -> None:
        token = self.server.config.instructor_token or ""
        if not self.server.host_allowed(request):
            raise web.HTTPMisdirectedRequest(text="dumplab serve: unknown host\n")
        if not token_ok(request, token):
            raise web.HTTPForbidden(text="dumplab serve: the instructor token is wrong\n")

    def rows(self) -> list[dict[str, Any]]:
        """One row per seat: what the server knows, with what its console reported."""
        rows = []
        now = time.monotonic()
        for seat in sorted(self.server.seats.values(), key=lambda s: s.started):
            workdir = seat.workdir(self.server.config.base)
            status = channel.read_status(workdir)
            rows.append({
                "seat": seat.id, "trainee": seat.name, "remote": seat.remote,
                "workdir": workdir.name if workdir else "",
                "state": status.get("state", "starting"),
                "lab": status.get("lab", ""), "step": status.get("step", ""),
                "score": status.get("score", ""),
                "idle_s": round(now - seat.last_input),
                "dumps": status.get("dumps", 0), "faults": status.get("faults", []),
                "messages": status.get("messages", 0),
            })
        return rows

    async def sessions_json(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.json_response(self.rows())

    async def page(self, request: web.Request) -> web.Response:
        self._check(request)
        token = self.server.config.instructor_token or ""
        rows = self.rows()
        head = ("<tr><th>trainee</th><th>work directory</th><th>LPAR</th><th>lab</th>"
                "<th>step</th><th>score</th><th>last input</th><th>dumps</th>"
                "<th>faults injected</th><th>actions</th></tr>")
        body = [(f"<h2>DumpLab classroom: {len(rows)} of {self.server.config.max_sessions} "
                "sessions</h2><table>"), head]
        options = "".join(f"<option>{html.escape(f)}</option>" for f in FAULTS)
        for row in rows:
            seat = html.escape(row["seat"])
            cells = [row["trainee"], row["workdir"], row["state"], row["lab"], row["step"],
                     row["score"], f"{row['idle_s']} s ago", row["dumps"],
                     ", ".join(row["faults"])]
            actions = (
                f"<form method='post' action='instructor/{seat}/fault'>"
                f"<select name='fault'>{options}</select><button>inject</button></form>"
                f"<form method='post' action='instructor/{seat}/message'>"
                f"<input name='text' maxlength='{channel.MESSAGE_CHARS}'>"
                "<button>send</button></form>"
                f"<form method='post' action='instructor/{seat}/end'>"
                "<button>end session</button></form>")
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                        + f"<td>{actions}</td></tr>")
        body.append("</table><p>Refreshed every 5 s.</p>")
        response = web.Response(content_type="text/html",
                                text=_page("DumpLab classroom", "".join(body), refresh=5))
        response.set_cookie(TOKEN_COOKIE, token, samesite="Strict", httponly=True)
        return response

    async def act(self, request: web.Request) -> web.Response:
        self._check(request)
        if not self.server.origin_allowed(request):
            raise web.HTTPForbidden(text="dumplab serve: cross-origin request refused\n")
        seat = self.server.seats.get(request.match_info["seat"])
        if seat is None:
            raise web.HTTPNotFound(text="dumplab serve: no such session\n")
        form = await request.post()
        action = request.match_info["action"]
        workdir = seat.workdir(self.server.config.base)
        if action == "end":
            await self.server.end_seat(seat, "the instructor ended the session")
        elif action == "fault" and form.get("fault") in FAULTS and workdir is not None:
            channel.append_action(workdir, {"action": "fault", "fault": str(form["fault"])})
        elif action == "message" and isinstance(form.get("text"), str) and workdir is not None:
            text = " ".join(str(form["text"]).split())[:channel.MESSAGE_CHARS]
            if text:
                channel.append_action(workdir, {"action": "message", "text": text})
        else:
            raise web.HTTPBadRequest(text="dumplab serve: unknown action\n")
        raise web.HTTPSeeOther("../../instructor")
