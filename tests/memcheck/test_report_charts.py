"""Charts that tell the truth, one rate on every surface, and the weight of a batch of reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from memcheck.cli.main import main
from memcheck.findings import KIND_TABLE, Finding, kind_of
from memcheck.report import render_html, render_text, write_reports
from memcheck.report.charts import chart_specs
from memcheck.report.evidence import blocks
from memcheck.report.growth import trend
from memcheck.report.series import series
from memcheck.run import Run
from tests.memcheck.report_fixtures import make_run, sample


def spec(run: Run, chart_id: str) -> dict:
    return next(s for s in chart_specs(run) if s["id"] == chart_id)


def test_short_runs_are_drawn_as_points_not_lines() -> None:
    run = Run(name="short", samples=[sample(0, 0), sample(1, 1)])
    for s in chart_specs(run):
        assert all(trace["mode"] == "markers" for trace in s["data"]), s["id"]
    long = spec(make_run(), "chart-rss")
    assert "lines" in long["data"][0]["mode"]


def test_teardown_samples_are_marked_apart_from_the_loop() -> None:
    samples = [dict(sample(i, 10 * i), phase="loop") for i in range(8)]
    samples.append(dict(sample(8, 70), phase="teardown", rss_bytes=10))
    rss = spec(Run(name="t", samples=samples), "chart-rss")
    loop, torn = rss["data"][0], rss["data"][1]
    assert 10 not in loop["y"] and len(loop["x"]) == 8  # the line is the loop's
    assert "teardown" in torn["name"] and torn["mode"] == "markers" and len(torn["x"]) == 1


def test_memchecks_own_share_of_rss_is_drawn_when_measured() -> None:
    samples = [dict(sample(i, i), memcheck_bytes=1_000_000 + 1000 * i) for i in range(10)]
    names = [t["name"] for t in spec(Run(name="own", samples=samples), "chart-rss")["data"]]
    assert "memcheck&#x27;s own share" in names or "memcheck's own share" in names
    assert "RSS without memcheck" in names
    assert len(spec(make_run(), "chart-rss")["data"]) == 1  # not measured: not drawn


def test_every_chart_has_its_verdict_from_run_growth_and_the_page_shows_it() -> None:
    run = make_run()
    page = render_html(run)
    for s in chart_specs(run):
        assert s["verdict"]
    rss = trend(run, "rss_bytes").words()
    assert rss == "growing +49.8 KiB/iter"  # the soak's robust RSS slope (51,000 B), not first-to-last
    assert rss in page
    assert rss in render_text(run, 120)  # the terminal says the very same words
    assert "+48.0 KiB/iter" in json.dumps(run.growth) or run.growth["bytes_per_iteration"] == 49152.0


def test_one_rate_on_every_surface_for_a_soak_growth() -> None:
    run = make_run()
    text, page = render_text(run, 120), render_html(run)
    words = trend(run, "ledger_total_bytes").words()
    assert words in text and words in page
    xs, ys = series(run, "ledger_total_bytes")
    first_to_last = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
    assert abs(first_to_last - 49152) < 1  # the fixture is linear, so both agree here ...
    skewed = make_run()
    skewed.growth["signals"]["rss"]["slope"] = 1024.0  # ... and when they differ, only Run.growth is shown
    assert "+1.0 KiB/iter" in render_text(skewed, 120) and "+1.0 KiB/iter" in render_html(skewed)


def test_a_run_without_a_growth_estimate_invents_no_rate() -> None:
    run = make_run(growth=None)
    assert "/iter" not in render_text(run, 120).split("Memory over iterations", 1)[1]


def test_kind_table_declares_each_kind_once_and_unknown_kinds_render_generically() -> None:
    assert set(KIND_TABLE) >= {"double_grad", "retained_graph", "growth", "ref_cycle"}
    for name, row in KIND_TABLE.items():
        assert row.name == name and row.doc and row.severity in ("info", "warning", "error")
    odd = Finding("caught_error", "warning", "caught <b>it</b>", evidence={"times": 3, "bytes": 2048})
    assert kind_of("caught_error").shows == () and blocks(odd) == []
    run = Run(name="new", findings=[odd])
    page = render_html(run)
    assert "caught_error" in page and "caught &lt;b&gt;it&lt;/b&gt;" in page and "2.0 KiB" in page
    assert "times: 3" in render_text(run, 80)


def test_a_single_report_is_one_self_contained_file(tmp_path: Path) -> None:
    paths = write_reports(make_run(), tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script src=" not in page and "Plotly" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_a_batch_shares_one_copy_of_plotly(tmp_path: Path, capsys) -> None:
    runs = []
    for i in range(3):
        path = tmp_path / f"run{i}.json"
        make_run(name=f"run{i}").to_json(path)
        runs.append(str(path))
    out = tmp_path / "batch"
    assert main(["report", *runs, "-o", str(out)]) == 0
    scripts = list(out.glob("plotly-*.min.js"))
    pages = sorted(out.glob("*.html"))
    assert len(scripts) == 1 and len(pages) == 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert re.search(rf'<script src="{re.escape(scripts[0].name)}"></script>', text)
        assert page.stat().st_size < scripts[0].stat().st_size / 5


class TypedSample:
    """Shaped like the core's typed samples: fields as attributes, plus ``to_dict()``."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def test_typed_samples_render_like_dicts(tmp_path: Path) -> None:
    dicts = make_run()
    typed = make_run(samples=[TypedSample(**s) for s in dicts.samples])
    assert render_text(typed, 100) == render_text(dicts, 100)
    assert chart_specs(typed) == chart_specs(dicts)
    assert series(typed, "rss_bytes") == series(dicts, "rss_bytes")
    path = tmp_path / "typed.json"
    typed.to_json(path)
    assert Run.from_json(path).samples == dicts.samples


def test_typed_table_rows_render_and_serialise_like_dicts(tmp_path: Path) -> None:
    dicts = make_run()
    typed = make_run(
        sites=[TypedSample(**r) for r in dicts.sites], top_owners=[TypedSample(**r) for r in dicts.top_owners]
    )
    assert render_text(typed, 100) == render_text(dicts, 100)
    assert render_html(typed) == render_html(dicts)
    typed.to_json(tmp_path / "rows.json")
    assert Run.from_json(tmp_path / "rows.json") == dicts


def test_a_partial_run_is_never_called_clean(tmp_path: Path) -> None:
    path = tmp_path / "soak_mlp-20250101-120000-123-ab12.samples.jsonl"
    lines = [json.dumps(sample(i, 10 * i)) for i in range(30)]
    path.write_text("\n".join(lines) + '\n{"iteration": 300, "t"', encoding="utf-8")
    from memcheck.report.samples_file import run_from_samples

    run = run_from_samples(path)
    assert run.name == "soak_mlp" and run.partial and run.iterations == 290
    text, page = render_text(run, 80), render_html(run)
    assert text.startswith("? PARTIAL") and "CLEAN" not in text
    assert "No memory problems found" not in text and "No memory problems found" not in page
    assert "killed before memcheck could judge it" in page and ">Partial<" in page
    assert run.growth is not None and run.growth["certain"]  # the fixture's ledger grows linearly
    assert trend(run, "ledger_total_bytes").words() in text and trend(run, "ledger_total_bytes").words() in page
