"""``memcheck soak``: scenarios run under ``memcheck.soak``, Ctrl-C, a raising step, bad scenario files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from memcheck.cli.main import main
from memcheck.run import Run

ROOT = Path(__file__).resolve().parents[2]

TINY = """
import agcore as ag
from memcheck.scenario import Scenario

KEPT = []


def build(fixed):
    w = ag.randn(32, 32, requires_grad=True, name="w")

    def step(i):
        {trigger}
        loss = (ag.randn(8, 32) @ w).tanh().sum()
        loss.backward()
        KEPT.append(loss.item() if fixed else loss)  # culprit when buggy: every graph stays alive

    return step


SCENARIO = Scenario(name="tiny", description="a loss history that keeps graphs", build=build,
                    default_iterations=40, soak=True)
"""


def scenario(tmp_path: Path, trigger: str = "pass") -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(TINY).replace("{trigger}", trigger), encoding="utf-8")
    return path


def soak(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str, dict[str, Path]]:
    code = main(["soak", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    paths = {}
    for line in out.splitlines():
        for label, key in (("JSON report: ", "json"), ("HTML report: ", "html"), ("Samples: ", "samples")):
            if line.startswith(label):
                paths[key] = Path(line[len(label) :].strip())
    return code, out, err, paths


def test_buggy_soak_fails_and_writes_reports_and_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, paths = soak(
        capsys,
        scenario(tmp_path),
        "-n",
        "60",
        "--sample-every",
        "2",
        "--no-early-stop",
        "--no-progress",
        "-o",
        tmp_path / "out",
    )
    assert code == 1, out + err
    assert {"json", "html", "samples"} <= set(paths)
    run = Run.from_json(paths["json"])
    assert run.name == "tiny-buggy"
    assert run.iterations == 60 and not run.stopped_early
    assert "retained_graph" in {f.kind for f in run.failing("error")}
    lines = paths["samples"].read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 30 and all("ledger_total_bytes" in json.loads(line) for line in lines)
    assert paths["samples"].name.startswith(paths["json"].stem)  # one stem for the run's files


def test_fixed_soak_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, paths = soak(
        capsys, scenario(tmp_path), "--fixed", "-n", "30", "--sample-every", "2", "-o", tmp_path
    )  # with the progress bar
    assert code == 0, out + err
    run = Run.from_json(paths["json"])
    assert run.name == "tiny-fixed" and run.iterations == 30
    assert run.failing("error") == []


def test_default_iterations_come_from_the_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _, paths = soak(capsys, scenario(tmp_path), "--fixed", "--no-progress", "-o", tmp_path)
    assert code == 0
    assert Run.from_json(paths["json"]).iterations == 40


def test_ctrl_c_writes_the_report_of_what_ran(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trigger = "if i == 12: raise KeyboardInterrupt"
    code, out, err, paths = soak(
        capsys, scenario(tmp_path, trigger), "--fixed", "-n", "100", "--no-progress", "-o", tmp_path
    )
    assert code == 130, out + err
    run = Run.from_json(paths["json"])
    assert run.interrupted is True
    assert 10 <= run.iterations <= 13


def test_raising_step_exits_1_with_the_error_in_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trigger = "if i == 5: raise RuntimeError('step five broke')"
    code, out, err, paths = soak(
        capsys, scenario(tmp_path, trigger), "--fixed", "-n", "50", "--no-progress", "-o", tmp_path
    )
    assert code == 1, out + err
    run = Run.from_json(paths["json"])
    assert run.error["type"] == "RuntimeError" and run.error["message"] == "step five broke"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n", "defines no SCENARIO"),
        ("SCENARIO = 42\n", "not a memcheck.scenario.Scenario"),
        ("raise ImportError('no such engine')\n", "ImportError: no such engine"),
    ],
)
def test_bad_scenario_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, expected: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source, encoding="utf-8")
    code, _, err, _ = soak(capsys, path, "-o", tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memcheck: error: cannot load a scenario"), err
    assert expected in lines[0]


def test_missing_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, _ = soak(capsys, tmp_path / "absent.py")
    assert code == 2
    assert err.strip() == f"memcheck: error: {tmp_path / 'absent.py'}: no such file"


def test_the_5000_iteration_scenario_stops_early_on_its_leak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ROOT / "scenarios" / "soak_5000.py"
    if not path.is_file():
        pytest.skip("scenarios/soak_5000.py not written yet")
    code, out, err, paths = soak(capsys, path, "--no-progress", "-o", tmp_path)
    assert code == 1, out + err
    run = Run.from_json(paths["json"])
    assert run.stopped_early and run.iterations < 5000
    assert "retained_graph" in {f.kind for f in run.findings}
