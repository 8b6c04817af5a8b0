"""The char GPT scenario: buggy names the line that keeps attention maps with their graph; fixed is clean.

Short runs (a few seconds each); the 5000-iteration soak is ``python scenarios/char_gpt.py --fixed``.
"""

from __future__ import annotations

from pathlib import Path

from memcheck.scenario import culprit_lines, load_scenario, run_scenario, site_is

FOLDER = Path(__file__).resolve().parents[2] / "scenarios"
PATH = FOLDER / "char_gpt.py"
ITERATIONS = 20  # the buggy list of the last eight maps is full after eight steps


def test_the_training_text_is_a_megabyte_of_shakespeare_without_gutenberg_boilerplate() -> None:
    text = (FOLDER / "data" / "shakespeare.txt").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) >= 1_000_000
    assert text.startswith("HAMLET, PRINCE OF DENMARK") and "Gutenberg" not in text
    assert (FOLDER / "data" / "build_shakespeare.py").is_file()


def test_buggy_finds_the_retained_graph_at_the_culprit_line(tmp_path: Path) -> None:
    scenario = load_scenario(PATH)
    session = run_scenario(scenario, False, ITERATIONS, samples_path=tmp_path / "samples.jsonl")
    findings = session.findings
    assert {f.kind for f in findings} == {"retained_graph"}, [(f.kind, f.message) for f in findings]
    (line,) = culprit_lines(PATH)
    (finding,) = findings
    assert site_is(finding.sites[0], PATH, line), finding.sites
    assert "attention_maps" in finding.message


def test_fixed_is_clean(tmp_path: Path) -> None:
    scenario = load_scenario(PATH)
    session = run_scenario(scenario, True, ITERATIONS, samples_path=tmp_path / "samples.jsonl")
    assert session.findings == [], [(f.kind, f.message) for f in session.findings]
    assert session.run.error is None and session.run.iterations >= ITERATIONS
