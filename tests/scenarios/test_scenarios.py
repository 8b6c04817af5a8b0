"""Every scenario: the buggy variant yields exactly its expected kinds and names its culprit line; fixed is clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import memcheck
from memcheck.scenario import (
    Scenario,
    culprit_lines,
    list_scenarios,
    load_scenario,
    run_cli,
    run_scenario,
    site_is,
)

FOLDER = Path(__file__).resolve().parents[2] / "scenarios"
NAMES = sorted(p.stem for p in FOLDER.glob("*.py") if not p.name.startswith("_"))
#: soak scenarios stop early when buggy; a few hundred iterations are enough to judge either variant
SOAK_ITERATIONS = 400


def _run(name: str, fixed: bool, tmp_path: Path):
    scenario = load_scenario(FOLDER / f"{name}.py")
    n = SOAK_ITERATIONS if scenario.soak else None
    return scenario, run_scenario(scenario, fixed, n, samples_path=tmp_path / "samples.jsonl")


def test_every_bug_class_has_a_scenario() -> None:
    expected = {"double_grad", "weakref_graph", "grad_store", "soak_5000", "tape_alias", "temporaries",
                "inplace_saved", "ref_cycle"}  # fmt: skip
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_buggy_variant_reports_exactly_the_expected_kinds(name: str, tmp_path: Path) -> None:
    scenario, session = _run(name, False, tmp_path)
    assert scenario.expected_kinds(False), f"{name} declares no expected finding for its buggy variant"
    assert {f.kind for f in session.findings} == scenario.expected_kinds(False), [
        (f.kind, f.message) for f in session.findings
    ]


@pytest.mark.parametrize("name", NAMES)
def test_buggy_variant_names_the_culprit_line(name: str, tmp_path: Path) -> None:
    scenario, session = _run(name, False, tmp_path)
    path = FOLDER / f"{name}.py"
    lines = culprit_lines(path)
    assert len(lines) == 1, f"{name}.py must mark exactly one line with '# culprit', found {lines}"
    sites = [s for f in session.findings for s in f.sites]
    assert any(site_is(s, path, lines[0]) for s in sites), f"line {lines[0]} not among {sites}"


@pytest.mark.parametrize("name", NAMES)
def test_fixed_variant_is_clean(name: str, tmp_path: Path) -> None:
    scenario, session = _run(name, True, tmp_path)
    assert scenario.expected_kinds(True) == set()
    assert session.findings == [], [(f.kind, f.message) for f in session.findings]
    assert session.run.error is None


def test_soak_scenario_stops_early_when_buggy(tmp_path: Path) -> None:
    _, session = _run("soak_5000", False, tmp_path)
    run = session.run
    # a retained graph is certain by itself: the soak stops once the line window has named the line
    assert run.stopped_early and run.iterations <= 30, run.stop_reason
    (retained,) = [f for f in run.findings if f.kind == "retained_graph"]
    assert retained.evidence["holder"]["executed"] and retained.evidence["bytes_per_iteration"] >= 1024
    assert (tmp_path / "samples.jsonl").read_text().count("\n") >= 2


def test_run_cli_writes_reports_and_returns_0_when_findings_match(tmp_path: Path, capsys) -> None:
    scenario = load_scenario(FOLDER / "inplace_saved.py")
    assert run_cli(scenario, ["-o", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "as expected" in out
    (path,) = tmp_path.glob("inplace_saved-buggy-*.json")  # unique names: a later run never replaces it
    report = json.loads(path.read_text())
    assert [f["kind"] for f in report["findings"]] == ["inplace_saved"]
    assert path.with_suffix(".html").is_file()


def test_run_cli_returns_1_when_findings_differ(tmp_path: Path) -> None:
    scenario = load_scenario(FOLDER / "inplace_saved.py")
    scenario.expected = {"buggy": {"growth"}, "fixed": set()}
    assert run_cli(scenario, ["-o", str(tmp_path), "--no-progress", "--iterations", "2"]) == 1


def test_run_cli_inside_an_active_session_only_runs_the_steps(tmp_path: Path) -> None:
    scenario = load_scenario(FOLDER / "tape_alias.py")
    with memcheck.watch(name="outer") as session:
        assert run_cli(scenario, ["-o", str(tmp_path), "--iterations", "4"]) == 0
    assert session.iterations == 4
    assert {f.kind for f in session.findings} == {"dangling_ref"}
    assert list(tmp_path.iterdir()) == []  # the outer session reports, not the scenario


def test_load_scenario_explains_a_file_without_scenario(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text("x = 1\n")
    with pytest.raises(AttributeError, match="defines no SCENARIO"):
        load_scenario(script)
    with pytest.raises(FileNotFoundError):
        load_scenario(tmp_path / "missing.py")


def test_load_scenario_does_not_run_the_cli() -> None:
    scenario = load_scenario(FOLDER / "tape_alias.py")
    assert isinstance(scenario, Scenario) and scenario.seed == "003"
    assert scenario.path.endswith("tape_alias.py")


def test_list_scenarios_reads_descriptions_without_executing(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text('DESCRIPTION = "explodes"\nSCENARIO = 1\nraise SystemExit(3)\n')
    (tmp_path / "_helper.py").write_text("SCENARIO = 1\n")
    (tmp_path / "plain.py").write_text('"""not a scenario"""\n')
    assert list_scenarios(tmp_path) == [("boom", "explodes")]
    listed = dict(list_scenarios(FOLDER))
    assert set(listed) == set(NAMES)
    assert all(listed.values())


@pytest.mark.parametrize("name", [n for n in NAMES if not load_scenario(FOLDER / f"{n}.py").soak])  # soaks: minutes
@pytest.mark.parametrize("fixed", [False, True], ids=["buggy", "fixed"])
def test_memcheck_run_of_a_scenario_reports_what_it_expects(name: str, fixed: bool, tmp_path: Path) -> None:
    from memcheck.cli.main import main

    args = ["run", str(FOLDER / f"{name}.py"), "-o", str(tmp_path), "--fail-on", "info"]
    code = main(args + (["--", "--fixed"] if fixed else []))
    (report,) = tmp_path.glob("*.json")
    kinds = {f["kind"] for f in json.loads(report.read_text())["findings"]}
    expected = load_scenario(FOLDER / f"{name}.py").expected_kinds(fixed)
    assert kinds == expected
    assert code == (1 if expected else 0)
