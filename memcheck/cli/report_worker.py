"""A process forked before the watched script runs, that renders the run's reports when it ends.

The renderers take ~40 ms to load (rich, jinja2, the page template, plotly.js): a
twentieth of a 10,000-step tiny-model run, paid after the script, while the user
waits. The worker loads them while the script runs (on another core where there
is one), then renders the terminal text and writes the HTML page from the run's
JSON, which holds everything either needs (``memcheck report`` renders the same
from it). The terminal text comes back to be printed here, so what the user sees
goes through this process's stdout as before.

Where it cannot help it is not used and this process renders, as it did without
it: no ``os.fork``, threads already running (a fork copies one of them), a run
that forked itself (only the process that made the worker asks it), stdout
replaced since the fork, or a worker that failed, died or fell silent. It never
outlives its parent: it ignores Ctrl-C and SIGTERM (the parent reports those) and
exits when the parent closes its pipe, or dies.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any, NoReturn

#: how long the parent waits for one reply before it renders itself (a big run's page takes ~1 s)
PATIENCE_S = 120.0
#: set to 0 to render in the parent (for comparing the two, or a platform where forking misbehaves)
ENV_SWITCH = "MEMCHECK_REPORT_WORKER"


class ReportWorker:
    """The parent's handle on a forked renderer: ask it once, read its two replies, close it."""

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid = pid
        self.owner = os.getpid()
        self.stdout = sys.stdout  # the stream the worker's terminal text was made for
        self._requests: int | None = requests
        self._replies: IO[bytes] | None = os.fdopen(replies, "rb")

    @classmethod
    def fork(cls) -> ReportWorker | None:
        """A worker, or None where one cannot be made safely (see the module's docstring)."""
        if not hasattr(os, "fork") or os.environ.get(ENV_SWITCH, "1") == "0" or threading.active_count() > 1:
            return None
        for stream in (sys.stdout, sys.stderr):  # a buffered line would otherwise be copied into the child
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        try:
            requests_r, requests_w = os.pipe()
            replies_r, replies_w = os.pipe()
            pid = os.fork()
        except OSError:  # out of processes or memory: render here
            return None
        if pid == 0:  # pragma: no cover - the child's coverage is not collected (it leaves by os._exit)
            os.close(requests_w)
            os.close(replies_r)
            _serve(requests_r, replies_w)
        os.close(requests_r)
        os.close(replies_w)
        return cls(pid, requests_w, replies_r)

    def usable(self, console: Any = None) -> bool:
        """Whether this process may ask: its maker, printing to the stream the worker rendered for."""
        here = os.getpid() == self.owner and self._requests is not None
        return here and console is None and sys.stdout is self.stdout

    def terminal_text(self, json_path: Path, html_path: Path, shared_assets: bool = False) -> str | None:
        """Ask for the run in ``json_path`` (already written): its terminal text, or None (render it here).

        The worker writes ``html_path`` after replying; :meth:`html_written` says whether it did.
        """
        if self._requests is None:
            return None
        job = {"json": os.path.abspath(json_path), "html": os.path.abspath(html_path), "shared_assets": shared_assets}
        try:
            os.write(self._requests, (json.dumps(job) + "\n").encode("utf-8"))
        except OSError:  # it died before the run ended
            self.close()
            return None
        os.close(self._requests)
        self._requests = None  # asked: the replies are its answers
        reply = self._reply()
        text = reply.get("terminal") if reply is not None else None
        if not isinstance(text, str):
            self.close()
            return None
        return text

    def html_written(self) -> bool:
        """Whether the worker wrote the page it was asked for (False: write it here); closes the worker."""
        reply = self._reply() if self._requests is None else None  # (never asked: no reply will come)
        self.close()
        return reply is not None and reply.get("html") is True

    def close(self) -> None:
        """Stop the worker (if it still runs) and free its pipes; safe to call twice."""
        if self._requests is not None:
            os.close(self._requests)
            self._requests = None
        if self._replies is not None:
            self._replies.close()
            self._replies = None
        if os.getpid() != self.owner:
            return
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done == 0:  # still rendering or still loading: it was not needed after all
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):  # reaped by the script's own os.wait(), or gone
            pass

    def _reply(self) -> dict[str, Any] | None:
        replies = self._replies
        if replies is None:
            return None
        try:
            ready, _, _ = select.select([replies], [], [], PATIENCE_S)
            line = replies.readline() if ready else b""
            reply = json.loads(line) if line else None
        except (OSError, ValueError):
            reply = None
        if not isinstance(reply, dict) or "error" in reply:
            return None
        return reply


def _serve(requests: int, replies: int) -> NoReturn:  # pragma: no cover - runs in the child
    """The child: load the renderers, wait for the one job, reply with its terminal text, write its page."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent reports it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _load()
        job = _read_job(requests)
        if job is not None:
            from memcheck.report.html import write_html
            from memcheck.run import Run

            run = Run.from_json(job["json"])
            _send(replies, {"terminal": _terminal_text(run)})
            write_html(run, job["html"], shared_assets=bool(job.get("shared_assets")))
            _send(replies, {"html": True})
    except BaseException as exc:  # noqa: BLE001 - whatever went wrong, the parent renders instead
        try:
            _send(replies, {"error": f"{type(exc).__name__}: {exc}"})
        except BaseException:  # noqa: BLE001, S110 - the parent is gone
            pass
    finally:
        os._exit(0)  # never the parent's atexit handlers, buffers or finally blocks


def _load() -> None:  # pragma: no cover - runs in the child
    """Import and warm what rendering needs, while the script runs: a failure here shows in the job."""
    try:
        from memcheck.report import html, stdout_console, terminal  # noqa: F401

        stdout_console()

        html._environment().get_template("report.html.j2")
        html._plotly_js()
    except Exception:  # noqa: BLE001, S110 - rendering will raise it again, and the parent renders
        pass


def _read_job(requests: int) -> dict[str, Any] | None:  # pragma: no cover - runs in the child
    with os.fdopen(requests, "rb") as stream:
        line = stream.readline()  # blocks until the run ends; b"" when the parent closed or died first
    return json.loads(line) if line else None


def _terminal_text(run: Any) -> str:  # pragma: no cover - runs in the child
    """What :func:`memcheck.report.print_terminal` would print on this stdout (colour when a terminal)."""
    from memcheck.report import print_terminal, stdout_console

    console = stdout_console()
    with console.capture() as captured:
        print_terminal(run, console)
    return captured.get()


def _send(replies: int, message: dict[str, Any]) -> None:  # pragma: no cover - runs in the child
    data = (json.dumps(message) + "\n").encode("utf-8")
    while data:
        data = data[os.write(replies, data) :]
