"""The ``memcheck`` command line, run in-process through ``main(argv)`` (plus one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import memcheck
from memcheck.cli.main import main
from memcheck.run import Run

CLEAN = """
import agcore as ag
w = ag.randn(4, 4, requires_grad=True, name="weight")
for _ in range(3):
    loss = (ag.randn(2, 4) @ w).tanh().sum()
    loss.backward()
print("clean script done")
"""

RAISES = """
import agcore as ag
kept = ag.randn(64, 64, requires_grad=True, name="made_before_the_error")
loss = (kept * 2.0).sum()
loss.backward()
raise ValueError("boom in the script")
"""

DOUBLE_GRAD = """
import numpy as np
import agcore as ag
storage = np.ones((8, 8), dtype=np.float32)
w = ag.as_tensor(storage, requires_grad=True, name="w")
w_again = ag.as_tensor(storage, requires_grad=True, name="w_again")
(w * 2.0).sum().backward()
(w_again * 3.0).sum().backward()
"""

REPORTS_A = """
import memcheck
from memcheck.findings import Finding
memcheck.current_session().report(Finding(kind="dangling_ref", severity="{severity}", message="made up"))
"""


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def report_paths(out: str) -> dict[str, Path]:
    """The report files the command printed, by kind."""
    paths = {}
    for line in out.splitlines():
        for kind in ("JSON", "HTML"):
            if line.startswith(f"{kind} report: "):
                paths[kind.lower()] = Path(line.split(": ", 1)[1].strip())
    return paths


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("memcheck: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- --version and --help ------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"memcheck {memcheck.__version__}"


@pytest.mark.parametrize("sub", ["run", "soak", "report", "list"])
def test_help_of_each_subcommand(capsys: pytest.CaptureFixture[str], sub: str) -> None:
    code, out, _ = cli(capsys, sub, "--help")
    assert code == 0
    assert out.startswith(f"usage: memcheck {sub}")


def python_m_memcheck(*argv: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "memcheck", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_python_m_memcheck_help(tmp_path: Path) -> None:
    proc = python_m_memcheck("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: memcheck ")
    for sub in ("run", "soak", "report", "list"):
        assert f"    {sub} " in proc.stdout


def test_python_m_memcheck_exit_codes(tmp_path: Path) -> None:
    """A real process: the script's error gives 1 and a report in ./reports; bad input gives 2 and one line."""
    script = write(tmp_path, "raises.py", RAISES)
    proc = python_m_memcheck("run", script.name, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ValueError: boom in the script" in proc.stderr
    written = sorted(p.suffix for p in (tmp_path / "reports").iterdir())
    assert written == [".html", ".json"]
    bad = write(tmp_path, "bad.json", "{")
    proc = python_m_memcheck("report", bad, cwd=tmp_path)
    assert proc.returncode == 2
    one_error_line(proc.stderr)


# -- memcheck run --------------------------------------------------------------------------


def test_run_clean_script_writes_both_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "clean_train.py", CLEAN)
    code, out, err = cli(capsys, "run", script, "-o", tmp_path / "out")
    assert code == 0, out + err
    assert "clean script done" in out
    paths = report_paths(out)
    assert set(paths) == {"json", "html"}
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in paths.values())
    run = Run.from_json(paths["json"])
    assert run.name == "clean_train"
    assert run.command.startswith("memcheck run ") and "clean_train.py" in run.command
    assert run.error is None and run.failing("error") == []
    assert run.ledger_summary["records"] > 0  # it saw the script's tensors
    assert "<html" in paths["html"].read_text(encoding="utf-8").lower()


def test_run_passes_args_after_dashes_and_restores_argv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "helper_mod.py", "VALUE = 41\n")
    script = write(
        tmp_path,
        "args.py",
        """
        import sys
        import helper_mod
        print("ARGV", sys.argv[1:], helper_mod.VALUE + 1, __name__)
    """,
    )
    argv_before, path_before = list(sys.argv), list(sys.path)
    code, out, _ = cli(capsys, "run", script, "-o", tmp_path, "--", "--lr", "3", "-o", "x")
    assert code == 0
    assert "ARGV ['--lr', '3', '-o', 'x'] 42 __main__" in out
    assert sys.argv == argv_before and sys.path == path_before


def test_run_script_that_raises_keeps_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "raises.py", RAISES)
    code, out, err = cli(capsys, "run", script, "-o", tmp_path)
    assert code == 1
    assert 'raises.py", line 6' in err and "ValueError: boom in the script" in err
    run = Run.from_json(report_paths(out)["json"])
    assert run.error["type"] == "ValueError"
    assert run.error["message"] == "boom in the script"
    owners = [row["owner"] for row in run.top_owners]
    assert "made_before_the_error" in owners  # what it gathered before the error is there


@pytest.mark.parametrize(("body", "expected"), [("sys.exit(0)", 0), ("sys.exit()", 0), ("sys.exit(3)", 1)])
def test_run_system_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: int) -> None:
    script = write(tmp_path, "exits.py", f"import sys\n{body}\n")
    code, out, _ = cli(capsys, "run", script, "-o", tmp_path)
    assert code == expected
    run = Run.from_json(report_paths(out)["json"])
    assert (run.error is None) == (expected == 0)


def test_run_interrupted_script_exits_130_with_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "ctrl_c.py", "raise KeyboardInterrupt\n")
    code, out, _ = cli(capsys, "run", script, "-o", tmp_path)
    assert code == 130
    assert Run.from_json(report_paths(out)["json"]).interrupted is True


def test_run_error_finding_fails_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "double_grad.py", DOUBLE_GRAD)
    code, out, _ = cli(capsys, "run", script, "-o", tmp_path)
    assert code == 1
    run = Run.from_json(report_paths(out)["json"])
    assert [f.kind for f in run.failing("error")] == ["double_grad"]
    assert "double_grad" in out  # the terminal report names it


@pytest.mark.parametrize(
    ("severity", "fail_on", "expected"),
    [
        ("warning", None, 0),
        ("warning", "error", 0),
        ("warning", "warning", 1),
        ("warning", "info", 1),
        ("info", "warning", 0),
        ("info", "info", 1),
        ("error", "info", 1),
    ],
)
def test_fail_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], severity: str, fail_on: str | None, expected: int
) -> None:
    script = write(tmp_path, "reports_one.py", REPORTS_A.format(severity=severity))
    extra = ["--fail-on", fail_on] if fail_on else []
    code, out, err = cli(capsys, "run", script, "-o", tmp_path, *extra)
    assert code == expected, out + err


# -- memcheck report -----------------------------------------------------------------------


@pytest.fixture
def run_json(tmp_path: Path) -> Path:
    run = Run(
        name="past-run",
        command="memcheck run x.py",
        iterations=7,
        findings=[
            memcheck.Finding(
                kind="double_grad", severity="error", message="two grads for <w>", sites=["train.py:12"], bytes=256
            ),
        ],
    )
    path = tmp_path / "past.json"
    run.to_json(path)
    return path


def test_report_text_to_stdout(run_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "report", run_json)
    assert code == 0
    assert "double_grad" in out and "two grads for <w>" in out


def test_report_json_to_stdout_round_trips(run_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "report", run_json, "--format", "json")
    assert code == 0
    assert Run.from_dict(json.loads(out)).to_dict() == Run.from_json(run_json).to_dict()


def test_report_html_beside_the_json_by_default(run_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "report", run_json, "--format", "html")
    assert code == 0
    html = run_json.with_suffix(".html")
    assert report_paths(out)["html"] == html
    text = html.read_text(encoding="utf-8")
    assert "two grads for &lt;w&gt;" in text and "two grads for <w>" not in text


def test_report_format_from_output_suffix(run_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "again.html"
    assert cli(capsys, "report", run_json, "-o", target)[0] == 0
    assert "<html" in target.read_text(encoding="utf-8").lower()
    text_target = tmp_path / "again.txt"
    assert cli(capsys, "report", run_json, "-o", text_target)[0] == 0
    assert "two grads for <w>" in text_target.read_text(encoding="utf-8")


def test_report_into_a_folder(run_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "rendered"
    folder.mkdir()
    assert cli(capsys, "report", run_json, "-f", "json", "-o", folder)[0] == 0
    assert Run.from_json(folder / "past.json").name == "past-run"


# -- memcheck list -------------------------------------------------------------------------


def test_list_a_scenario_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "scen"
    folder.mkdir()
    write(folder, "tape_leak.py", '"""A tape that keeps every graph alive."""\nSCENARIO = None\n')
    write(folder, "double_grad.py", 'DESCRIPTION = "Two gradient buffers for one storage"\nSCENARIO = None\n')
    write(folder, "not_a_scenario.py", "x = 1\n")
    code, out, _ = cli(capsys, "list", "--dir", folder)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["double_grad", "Two", "gradient", "buffers", "for", "one", "storage"]
    assert lines[1].startswith("tape_leak ") and lines[1].endswith("A tape that keeps every graph alive.")
    assert "not_a_scenario" not in out


def test_list_the_project_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    folder = Path(__file__).resolve().parents[2] / "scenarios"
    if not any(folder.glob("*.py")):
        pytest.skip("no scenarios written yet")
    code, out, _ = cli(capsys, "list", "--dir", folder)
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith("run one")]
    assert names and all((folder / f"{name}.py").is_file() for name in names)


# -- bad input: exit 2, one line, no traceback -----------------------------------------------


def test_bad_input_missing_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", tmp_path / "nope.py")
    assert code == 2
    assert "nope.py: no such file" in one_error_line(err)


def test_bad_input_script_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", tmp_path)
    assert code == 2
    assert "is a folder" in one_error_line(err)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads unreadable files")
def test_bad_input_unreadable_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "secret.py", "print(1)\n")
    script.chmod(0)
    code, _, err = cli(capsys, "run", script)
    assert code == 2
    assert "cannot read" in one_error_line(err)


def test_bad_input_output_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "ran.py", "print('must not run')\n")
    blocker = write(tmp_path, "a_file", "x")
    code, out, err = cli(capsys, "run", script, "-o", blocker)
    assert code == 2
    assert "is a file" in one_error_line(err)
    assert "must not run" not in out  # checked before the script ran
    code, _, err = cli(capsys, "run", script, "-o", blocker / "below")
    assert code == 2
    assert "cannot write reports" in one_error_line(err)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_bad_input_read_only_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = write(tmp_path, "ran.py", "print(1)\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = cli(capsys, "run", script, "-o", locked)
    finally:
        locked.chmod(0o700)
    assert code == 2
    assert "cannot write reports" in one_error_line(err)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "memcheck.run", "schema_version": 99}', "schema_version 99"),
        ('{"hello": 1}', "not a memcheck run"),
        ('{"schema": "memcheck.run", "schema_version": 1, "iterations": "many"}', "damaged"),
    ],
)
def test_bad_input_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str) -> None:
    path = write(tmp_path, "bad.json", content)
    code, _, err = cli(capsys, "report", path)
    assert code == 2
    assert expected in one_error_line(err)


def test_bad_input_missing_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "report", tmp_path / "gone.json")
    assert code == 2
    assert "no such file" in one_error_line(err)


def test_bad_input_unknown_format(run_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "report", run_json, "--format", "pdf")
    assert code == 2
    assert "invalid choice: 'pdf'" in one_error_line(err)


def test_bad_input_report_into_missing_folder(
    run_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "report", run_json, "-o", tmp_path / "no" / "such" / "x.html")
    assert code == 2
    assert "does not exist" in one_error_line(err)


def test_bad_input_missing_scenario_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "list", "--dir", tmp_path / "nowhere")
    assert code == 2
    assert "does not exist" in one_error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", "x.py", "--fail-on", "fatal"],
        ["list", "--", "extra"],
        ["soak", "x.py", "--iterations", "0"],
    ],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = cli(capsys, *argv)
    assert code == 2
    one_error_line(err)
