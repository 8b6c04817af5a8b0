"""The report worker: a forked process renders what this one would, and never changes what the user gets.

In-process tests fork the test runner itself (the worker leaves by ``os._exit``);
the process tests drive ``python -m memcheck`` as users do: with the worker and
without it the output is the same, a killed parent leaves no worker behind, and
Ctrl-C delivered to the whole process group still ends in a report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from memcheck.cli import base
from memcheck.cli.report_worker import ENV_SWITCH, ReportWorker
from memcheck.report import print_terminal, render_html, render_text, write_json
from memcheck.run import Run
from tests.memcheck.report_fixtures import make_run
from tests.memcheck.test_cli_reliability import wait_until_made

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "80"}
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the worker is forked: POSIX only")


def fork_worker() -> ReportWorker:
    worker = ReportWorker.fork()
    if worker is None and threading.active_count() > 1:
        pytest.skip("another test left a thread running: the worker is (rightly) not forked")
    assert worker is not None
    return worker


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` has ended (a zombie of a dead parent counts: it runs nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_the_worker_renders_the_terminal_text_and_page_this_process_would(tmp_path: Path, capsys) -> None:
    run = make_run()
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    write_json(run, json_path)
    worker = fork_worker()
    try:
        text = worker.terminal_text(json_path, html_path)
        assert worker.html_written()
    finally:
        worker.close()
    assert gone(worker.pid)
    print_terminal(run)  # on the stream the worker was forked with (pytest's capture: no colour)
    assert text == capsys.readouterr().out
    assert "Findings" in text and "\x1b[" not in text
    loaded = Run.from_json(json_path)
    assert html_path.read_text(encoding="utf-8") == render_html(loaded) == render_html(run)


def test_conclude_with_a_worker_prints_and_writes_what_it_does_without(tmp_path: Path, capsys) -> None:
    run = make_run()
    worker = fork_worker()
    try:
        with_worker = base.conclude(SimpleNamespace(run=run), None, out_dir=tmp_path / "a", stem="r", worker=worker)
    finally:
        worker.close()
    shown_with = capsys.readouterr().out
    without = base.conclude(SimpleNamespace(run=run), None, out_dir=tmp_path / "b", stem="r")
    shown_without = capsys.readouterr().out
    assert shown_with.replace(str(tmp_path / "a"), "D") == shown_without.replace(str(tmp_path / "b"), "D")
    assert "Findings" in shown_with and "HTML report:" in shown_with
    assert with_worker.exit_code == without.exit_code
    for kind in ("json", "html"):
        assert with_worker.paths[kind].read_bytes() == without.paths[kind].read_bytes()


def test_a_dead_worker_costs_nothing_but_time(tmp_path: Path, capsys) -> None:
    # killed before the run ended (the OOM killer, a user's kill): this process renders everything itself
    run = make_run()
    worker = fork_worker()
    os.kill(worker.pid, signal.SIGKILL)
    assert gone(worker.pid)
    try:
        outcome = base.conclude(SimpleNamespace(run=run), None, out_dir=tmp_path, stem="r", worker=worker)
    finally:
        worker.close()
    shown = capsys.readouterr().out
    assert "Findings" in shown and outcome.paths["html"].read_text(encoding="utf-8") == render_html(run)
    assert Run.from_json(outcome.paths["json"]).to_dict() == run.to_dict()


def test_a_worker_never_asked_is_stopped_and_reaped() -> None:
    worker = fork_worker()
    worker.close()
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(worker.pid, os.WNOHANG)
    worker.close()  # twice is harmless


def test_only_the_process_that_made_the_worker_and_kept_its_stdout_asks_it() -> None:
    worker = fork_worker()
    try:
        assert worker.usable()
        assert not worker.usable(console=object())  # a caller's own console: rendered here
        stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the script replaced stdout during the run
        try:
            assert not worker.usable()
        finally:
            sys.stdout.close()
            sys.stdout = stdout
        worker.owner = -1  # as in a copy the watched script forked: it must not talk to its parent's worker
        assert not worker.usable()
        worker.owner = os.getpid()
    finally:
        worker.close()


def test_no_worker_while_threads_run_or_when_switched_off(monkeypatch) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert ReportWorker.fork() is None  # a fork copies one thread of many: not safe
    finally:
        stop.set()
        thread.join()
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert ReportWorker.fork() is None


SCRIPT = """
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import agcore as ag


def main():
    model = ag.nn.MLP([8, 16, 1])
    opt = ag.optim.SGD(model.parameters(), lr=0.01)
    x = ag.tensor(np.ones((4, 8), dtype=np.float32))
    history = []
    for step in range(300):
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        opt.step()
        history.append(loss)  # the classic: every graph kept
    print("done", len(history))


main()
"""


def memcheck(*argv: str | Path, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "memcheck", *map(str, argv)],
        cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )  # fmt: skip


def test_memcheck_run_prints_the_same_with_the_worker_as_without(tmp_path: Path) -> None:
    # each run measures itself (its samples, its times): each one's output is compared with its own JSON
    script = tmp_path / "train.py"
    script.write_text(SCRIPT, encoding="utf-8")
    for switch in ("1", "0"):
        proc = memcheck("run", script, "-o", tmp_path / switch, env={**ENV, ENV_SWITCH: switch})
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 1, out + err  # the retained graph is an error
        (json_path,) = (tmp_path / switch).glob("*.json")
        (html_path,) = (tmp_path / switch).glob("*.html")
        run = Run.from_json(json_path)
        assert [f.kind for f in run.findings] == ["retained_graph"]
        assert html_path.read_text(encoding="utf-8") == render_html(run)
        lines = [line.rstrip() for line in out.splitlines()]
        assert lines[0] == "done 300" and lines[-2:] == [f"JSON report: {json_path}", f"HTML report: {html_path}"]
        assert "\n".join(lines[1:-2]) + "\n" == render_text(run, width=80), switch


def test_a_killed_memcheck_run_leaves_no_worker_behind(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(f"""
        import time
        import agcore as ag
        open({str(ready)!r}, "w").close()
        while True:
            time.sleep(0.05)
        """),
        encoding="utf-8",
    )
    proc = memcheck("run", script, "-o", tmp_path / "reports")
    wait_until_made(ready, proc)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children  # the worker, waiting
    proc.kill()
    proc.communicate(timeout=60)
    assert gone(int(children[0])), "the worker outlived its parent"


def test_ctrl_c_to_the_whole_group_still_ends_in_a_report(tmp_path: Path) -> None:
    # a terminal's Ctrl-C reaches every process of the foreground group: the worker must not die of it
    ready = tmp_path / "ready"
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(f"""
        import time
        import numpy as np
        import agcore as ag
        w = ag.tensor(np.ones(4, dtype=np.float32), requires_grad=True)
        opt = ag.optim.SGD([w], lr=0.1)
        for i in range(10**9):
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()
            if i == 50:
                open({str(ready)!r}, "w").close()
            time.sleep(0.001)
        """),
        encoding="utf-8",
    )
    proc = memcheck("run", script, "-o", tmp_path / "reports", start_new_session=True)
    wait_until_made(ready, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "INTERRUPTED" in out.upper() and "HTML report:" in out, out + err
    (html_path,) = (tmp_path / "reports").glob("*.html")
    (json_path,) = (tmp_path / "reports").glob("*.json")
    assert html_path.read_text(encoding="utf-8") == render_html(Run.from_json(json_path))
