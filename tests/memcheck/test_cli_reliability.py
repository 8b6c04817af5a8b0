"""Runs and reports that lose nothing (issue 11): unique files, kill-safe soaks, faithful runs, bad inputs.

These drive real ``python -m memcheck`` processes where the behaviour is about
processes (two at once, a signal, a fresh interpreter's imports).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memcheck.cli.main import main
from memcheck.report.samples_file import read_samples, run_from_samples
from memcheck.run import Run

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "scenarios" / "soak_5000.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "80"}


def start(*argv: str | os.PathLike[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "memcheck", *map(str, argv)],
        cwd=cwd or ROOT,
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("memcheck: error: "), err
    return lines[0]


def wait_until_made(ready: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait for the script run by ``proc`` to create ``ready`` (it is in its loop); fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def wait_for_samples(folder: Path, lines: int, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(folder.glob("*.samples.jsonl"))
        if found and found[0].read_text(encoding="utf-8").count("\n") >= lines:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the soak wrote no samples in time")


# -- 1. no report overwrites another -----------------------------------------------------


def test_two_concurrent_runs_into_one_folder_leave_two_complete_sets(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import agcore as ag\nw = ag.randn(8, 8, requires_grad=True)\n(w * 2).sum().backward()\n")
    out = tmp_path / "reports"
    procs = [start("run", script, "-o", out) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], results
    jsons, htmls = sorted(out.glob("*.json")), sorted(out.glob("*.html"))
    assert len(jsons) == 2 and len(htmls) == 2
    assert {p.stem for p in jsons} == {p.stem for p in htmls}
    for path in jsons:
        assert Run.from_json(path).name == "train"
    printed = [line for _, o, _ in results for line in o.splitlines() if line.startswith("JSON report: ")]
    assert len(set(printed)) == 2  # each process names its own file
    assert not list(out.glob(".*.tmp"))  # no temporary left behind


def test_two_concurrent_soaks_leave_two_intact_samples_files(tmp_path: Path) -> None:
    args = ("soak", SOAK, "-n", "120", "--sample-every", "5", "--no-early-stop", "--no-progress", "-o", tmp_path)
    procs = [start(*args) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert all(code in (0, 1) for code, _, _ in results), results
    samples = sorted(tmp_path.glob("*.samples.jsonl"))
    assert len(samples) == 2 and len(list(tmp_path.glob("*.json"))) == 2 and len(list(tmp_path.glob("*.html"))) == 2
    for path in samples:
        lines = path.read_text(encoding="utf-8").splitlines()
        iterations = [json.loads(line)["iteration"] for line in lines]  # every line intact
        assert iterations == sorted(iterations) and iterations[-1] >= 115


# -- 2. kill-safe soaks ---------------------------------------------------------------------


def test_sigterm_during_a_soak_writes_the_report_and_exits_143(tmp_path: Path) -> None:
    proc = start("soak", SOAK, "-n", "1000000", "--no-early-stop", "--no-progress", "-o", tmp_path)
    wait_for_samples(tmp_path, 3, proc)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 143, out + err
    assert "Traceback" not in err and "Traceback" not in out
    (report,) = tmp_path.glob("*.json")
    run = Run.from_json(report)
    assert run.interrupted and run.iterations > 0
    assert "interrupted after" in out


def test_a_killed_soaks_samples_file_becomes_a_partial_report(tmp_path: Path) -> None:
    proc = start("soak", SOAK, "-n", "1000000", "--no-early-stop", "--no-progress", "-o", tmp_path)
    samples = wait_for_samples(tmp_path, 4, proc)
    proc.kill()
    proc.communicate()
    assert not list(tmp_path.glob("*.json"))  # SIGKILL: nothing but the samples
    with samples.open("a", encoding="utf-8") as fh:  # the last line cut mid-write
        fh.write('{"iteration": 99999, "t": 12.5, "rss_by')
    run = run_from_samples(samples)
    assert run.partial and run.interrupted and run.samples and run.iterations < 99999
    assert "cut mid-write" in run.metadata["partial"]
    assert run.name == "soak_5000-buggy"
    out_dir = tmp_path / "rendered"
    code = main(["report", str(samples), "-o", str(out_dir) + "/"])
    assert code == 0
    (page,) = out_dir.glob("*.html")
    assert "partial" in page.read_text(encoding="utf-8")
    assert main(["report", str(samples), "-f", "json", "-o", str(tmp_path / "again.json")]) == 0
    assert Run.from_json(tmp_path / "again.json").partial


def test_a_samples_file_without_samples_is_one_error_line(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "x.samples.jsonl"
    empty.write_text('{"iteration": 1, "t": 0.1, "rss_b', encoding="utf-8")
    assert main(["report", str(empty)]) == 2
    assert "holds no samples" in one_error_line(capsys.readouterr().err)
    assert len(read_samples_or_none(tmp_path / "missing.samples.jsonl")) == 0


def read_samples_or_none(path: Path) -> list:
    try:
        return read_samples(path).samples
    except ValueError:
        return []


# -- 3. the script runs as `python script.py` would -------------------------------------------

PROBE = """
import json, os, sys
first = {"numpy_before": "numpy" in sys.modules, "agcore_before": "agcore" in sys.modules}
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
import agcore as ag


def blas_threads():
    import ctypes
    try:
        libs = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower()}
    except OSError:
        return None
    for lib in libs:
        handle = ctypes.CDLL(lib)
        for name in ("openblas_get_num_threads", "openblas_get_num_threads64_",
                     "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads"):
            if hasattr(handle, name):
                return getattr(handle, name)()
    return None


print("PROBE " + json.dumps({**first, "argv": sys.argv, "name": __name__, "cwd": os.getcwd(),
      "path0": sys.path[0], "env": os.environ.get("MY_SETTING"), "file": __file__,
      "main_is_me": sys.modules["__main__"].__dict__ is globals(), "threads": blas_threads()}))
"""


def probe(out: str) -> dict:
    (line,) = [line for line in out.splitlines() if line.startswith("PROBE ")]
    return json.loads(line[len("PROBE ") :])


def test_memcheck_run_runs_the_script_as_python_would(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE, encoding="utf-8")
    env = {**ENV, "MY_SETTING": "kept", "OPENBLAS_NUM_THREADS": "2"}
    env.pop("OMP_NUM_THREADS", None)
    plain = subprocess.run(
        [sys.executable, "proj/probe.py", "a", "--b"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    proc = start("run", "proj/probe.py", "-o", tmp_path / "reports", "--", "a", "--b", cwd=tmp_path, env=env)
    code, out, err = finish(proc)
    assert code == 0, out + err
    expected, got = probe(plain.stdout), probe(out)
    assert got == expected
    assert got["numpy_before"] is False and got["agcore_before"] is False  # nothing imported first
    assert got["argv"] == ["proj/probe.py", "a", "--b"] and got["name"] == "__main__"
    if got["threads"] is not None:
        assert got["threads"] == 1  # the script's own BLAS setting took effect


# -- 5. every bad input is one line, exit 2 ------------------------------------------------------


def test_a_syntax_error_is_reported_before_anything_runs(tmp_path: Path, capsys) -> None:
    script = tmp_path / "broken.py"
    script.write_text("print('ran')\nx = (\n", encoding="utf-8")
    out_dir = tmp_path / "reports"
    assert main(["run", str(script), "-o", str(out_dir)]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "broken.py:2" in line and "was never closed" in line and "not run" in line
    assert "ran" not in captured.out
    assert not out_dir.exists() or not list(out_dir.iterdir())


@pytest.mark.parametrize(("field", "value", "named"), [
    ("samples", "oops", '"samples" should be a list'),
    ("findings", [{"kind": "growth"}], '"findings[0]" lacks the field'),
    ("iterations", "many", '"iterations" should be a number'),
    ("samples", [1, 2], '"samples[0]" should be an object'),
])  # fmt: skip
def test_a_damaged_field_in_a_run_json_is_named(tmp_path: Path, capsys, field: str, value, named: str) -> None:
    path = tmp_path / "run.json"
    data = Run(name="x").to_dict()
    data[field] = value
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["report", str(path)]) == 2
    assert named in one_error_line(capsys.readouterr().err)


def test_report_to_a_new_folder_makes_the_folder(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.json"
    Run(name="x").to_json(path)
    target = tmp_path / "newdir"
    assert main(["report", str(path), "-o", str(target) + "/"]) == 0
    assert target.is_dir() and (target / "run.html").is_file()


def test_a_scenario_script_with_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scenarios" / "inplace_saved.py"), "-o", str(blocker / "below"), "--no-progress"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot write reports" in one_error_line(proc.stderr)


def test_memcheck_import_is_light() -> None:
    code = "import sys, memcheck, memcheck.cli.main; print(sorted(m for m in ('numpy', 'agcore') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_script_exit_status_and_script_args_stay_the_scripts(tmp_path: Path, capsys) -> None:
    script = tmp_path / "quits.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        print("args", sys.argv[1:])
        sys.exit(0)
    """),
        encoding="utf-8",
    )
    assert main(["run", str(script), "-o", str(tmp_path / "r"), "--", "--flag"]) == 0
    assert "args ['--flag']" in capsys.readouterr().out


def test_sigterm_during_memcheck_run_writes_the_report_and_exits_143(tmp_path: Path) -> None:
    script = tmp_path / "forever.py"
    ready = tmp_path / "ready"
    script.write_text(
        textwrap.dedent(f"""
        import pathlib, time
        import agcore as ag
        w = ag.randn(8, 8, requires_grad=True, name="w")
        for i in range(10**9):
            (w * 2).sum().backward()
            if i == 20:
                pathlib.Path({str(ready)!r}).write_text("x")
            time.sleep(0.005)
    """),
        encoding="utf-8",
    )
    proc = start("run", script, "-o", tmp_path / "reports")
    wait_until_made(ready, proc)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 143, out + err
    assert "Traceback" not in err + out
    (report,) = (tmp_path / "reports").glob("*.json")
    assert Run.from_json(report).interrupted


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_sigterm_that_lands_inside_a_weakref_callback_is_not_lost(signum: int) -> None:
    # memcheck's ledger runs weakref callbacks in every op; Python drops what a callback raises, so a
    # SIGTERM handled inside one used to leave the program running (a soak that never stopped)
    import weakref

    from memcheck.cli.errors import Terminated, sigterm_as_interrupt

    class Box:
        pass

    def callback(ref: object) -> None:
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs here, inside the callback
            pass

    seen = []
    hook = sys.unraisablehook
    with pytest.raises(Terminated if signum == signal.SIGTERM else KeyboardInterrupt):
        with sigterm_as_interrupt():
            box = Box()
            ref = weakref.ref(box, callback)
            del box
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(ref)  # not reached: the signal was delivered again, outside the callback
    assert seen == [] and sys.unraisablehook is hook  # and the hook is the test runner's again
