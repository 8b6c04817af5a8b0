"""The HTML report as text: self-contained, every user string escaped, every part of the run shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from markupsafe import escape

from memcheck.findings import Finding
from memcheck.report import render_html, render_text, write_html
from memcheck.report.charts import chart_specs, script_json
from memcheck.run import Run
from tests.memcheck.report_fixtures import (
    ALL_SITES,
    CHAIN,
    EVIL_OWNER,
    EVIL_ROLE,
    EVIL_SITE,
    GROWTH_SITES,
    make_run,
)


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(make_run())


def esc(text: str) -> str:
    """What the template's autoescape makes of ``text``."""
    return str(escape(text))


def chart_data(page: str) -> list[dict]:
    match = re.search(r'<script type="application/json" id="memcheck-charts">(.*?)</script>', page, re.S)
    assert match, "no chart data block"
    return json.loads(match.group(1))


def test_write_html_returns_the_path_of_one_complete_file(tmp_path: Path) -> None:
    path = write_html(make_run(), tmp_path / "r.html")
    assert path == tmp_path / "r.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")


def test_nothing_is_fetched_from_the_network(page: str) -> None:
    tags = re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", page, re.I)
    assert tags, "expected at least the inline scripts"
    for tag in tags:
        assert not re.search(r"\b(?:src|href)\s*=", tag, re.I), tag
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page.split("<script>", 1)[0], re.I)
    assert "plotly.js v" in page and "Plotly.newPlot" in page  # the library itself is inlined


def test_hostile_names_are_escaped_everywhere(page: str) -> None:
    assert "<img src=x" not in page
    assert esc(EVIL_OWNER) in page
    assert "<script>alert(1)" not in page and "alert(1)" in page
    assert "<b>after</b>" not in page and "&lt;b&gt;after&lt;/b&gt;" in page
    assert EVIL_ROLE not in page
    # exactly the template's own three script blocks
    assert len(re.findall(r"<script\b", page)) == 3


def test_title_and_banner_escape_the_run_name() -> None:
    page = render_html(make_run(name="</title><script>x()</script>"))
    assert "</title><script>x()" not in page
    assert "&lt;/title&gt;&lt;script&gt;x()&lt;/script&gt;" in page


def test_every_site_appears(page: str) -> None:
    for site in [*ALL_SITES, *(r["site"] for r in GROWTH_SITES)]:
        assert esc(site) in page, site
    assert esc(EVIL_SITE) in page


def test_verdict_findings_messages_and_bytes(page: str) -> None:
    assert 'class="banner verdict-problems"' in page
    assert "3 errors, 1 warning, 1 info" in page
    assert "stopped early (leak certain: +48.0 KiB/iter over 390 iterations)" in page
    for kind in ("retained_graph", "growth", "double_grad", "aliased_buffers", "ref_cycle"):
        assert f'<span class="kind">{kind}</span>' in page
    assert "store loss.item() (or loss.detach()) instead of the loss tensor." in page
    assert "4.7 MiB (4,915,200 B)" in page  # retained_bytes in the evidence table
    assert page.index('id="finding-1"') < page.index('id="finding-5"')
    first = page.split('id="finding-1"', 1)[1].split("</article>", 1)[0]
    assert ">growth<" in first  # ordered like the terminal: most severe, then largest


def test_retention_chain_is_drawn_root_first(page: str) -> None:
    chain = page.split('<div class="chain">', 1)[1].split("</div>\n    \n", 1)[0]
    positions = [chain.index(esc(link["label"])) for link in CHAIN]
    assert positions == sorted(positions)
    assert chain.count('class="arrow"') == len(CHAIN) - 1
    assert 'class="link root"' in chain and 'class="link retained"' in chain


def test_growth_by_site_table_fastest_first(page: str) -> None:
    table = page.split("<h3>Growth by allocation site</h3>", 1)[1].split("</table>", 1)[0]
    assert table.index("soak_5000.py:33") < table.index("arith.py:88")
    assert "+32.0 KiB/iter" in table and "+16.0 KiB/iter" in table


def test_owners_sites_ledger_growth_and_metadata_sections(page: str) -> None:
    owners = page.split('id="owners"', 1)[1].split("</section>", 1)[0]
    assert "loss_history" in owners and "layer9.weight" in owners and esc(EVIL_OWNER) in owners
    sites = page.split('id="sites"', 1)[1].split("</section>", 1)[0]
    assert "tracemalloc" in sites and "+32.0 KiB/iter" in sites
    run = page.split('id="run"', 1)[1]
    for text in (
        "python scenarios/soak_5000.py --iterations 500 --out reports",
        "reports/soak_mlp.samples.jsonl",
        "12.5 s",
        "2.4.6",
        "8.0 GiB",
        "Slope by signal",
        "default",
    ):
        assert text in run, text


def test_chart_data_is_valid_json_with_the_four_charts(page: str) -> None:
    specs = {spec["id"]: spec for spec in chart_data(page)}
    assert set(specs) == {"chart-rss", "chart-numpy", "chart-ledger", "chart-nodes"}
    for chart_id in specs:
        assert f'id="{chart_id}"' in page
    numpy_trace = specs["chart-numpy"]["data"][0]
    assert len(numpy_trace["x"]) == 30 and numpy_trace["x"][0] == 200  # nulls skipped
    low, high = specs["chart-numpy"]["layout"]["xaxis"]["range"]  # shares the run's span, padded 3%
    assert low == pytest.approx(-14.7) and high == pytest.approx(504.7)
    ledger = specs["chart-ledger"]["data"]
    assert {t["stackgroup"] for t in ledger} == {"roles"} and len(ledger) == 6
    assert specs["chart-ledger"]["layout"]["yaxis"]["title"]["text"] == "MiB"
    activation = next(t for t in ledger if t["name"] == "activation")
    assert activation["y"][1] == round((1_048_576 + 32768 * 10) / 2**20, 4)
    assert specs["chart-rss"]["layout"]["shapes"][0]["x0"] == 100  # the growth window is shaded
    names = [t["name"] for t in ledger]
    assert not any("<" in n for n in names)  # plotly.js reads tags in names; entities show as text
    assert any(n.startswith("&lt;/script&gt;&lt;script&gt;") and n.endswith("…") for n in names)


def test_script_json_cannot_close_its_script_tag() -> None:
    value = {"a": "</script><script>alert(1)</script>", "b": "&amp; \u2028", "c": [1, 2.5, None]}
    text = script_json(value)
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == value


def test_the_inlined_plotly_js_cannot_close_its_script_tag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from memcheck.report import html

    monkeypatch.setattr(html, "_read_plotly_js", lambda: "a</script>b</SCRIPT c</div>d</ScRiPt ✓".encode())
    monkeypatch.setattr(html, "_clean_marker", lambda: tmp_path / "plotly.clean")
    html._plotly_js.cache_clear()
    try:
        assert html._plotly_js() == "a<\\/script>b<\\/SCRIPT c</div>d<\\/ScRiPt ✓".encode()
        page = write_html(make_run(), tmp_path / "r.html").read_text(encoding="utf-8")  # bytes and text, one file
        assert "a<\\/script>b<\\/SCRIPT c</div>d<\\/ScRiPt ✓" in page and page == render_html(make_run())
        assert not (tmp_path / "plotly.clean").exists()  # escaped: never marked clean
    finally:
        html._plotly_js.cache_clear()


def test_a_clean_plotly_js_is_searched_once_then_marked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from memcheck.report import html

    marker = tmp_path / "plotly.clean"
    monkeypatch.setattr(html, "_clean_marker", lambda: marker)
    searched: list[bytes] = []
    monkeypatch.setattr(html, "_escaped_script", lambda data: searched.append(data) or data)
    monkeypatch.setattr(html, "_read_plotly_js", lambda: b"plot(a</div>)")
    html._plotly_js.cache_clear()
    try:
        assert html._plotly_js() == b"plot(a</div>)" and searched == [b"plot(a</div>)"] and marker.is_file()
        html._plotly_js.cache_clear()  # a later process: the marker stands for the search
        assert html._plotly_js() == b"plot(a</div>)" and len(searched) == 1
    finally:
        html._plotly_js.cache_clear()


def test_the_clean_marker_names_the_file_and_its_version(tmp_path: Path) -> None:
    from memcheck.report import html

    marker = html._clean_marker()
    source = html._plotly_file()
    if marker is None or source is None:
        pytest.skip("no plotly.min.js or no jinja2 cache folder here")
    st = source.stat()
    assert marker.name.endswith(f"-{st.st_size}-{st.st_mtime_ns}.clean") and marker.parent.is_dir()


def test_no_samples_and_no_findings_render_plainly() -> None:
    page = render_html(Run(name="empty"))
    assert "No samples were taken in this run." in page
    assert "No memory problems found." in page
    assert chart_data(page) == []
    assert 'class="banner verdict-clean"' in page


def test_error_run_shows_the_escaped_traceback() -> None:
    run = Run(
        name="boom",
        error={
            "type": "ValueError",
            "message": "bad <input>",
            "traceback": "Traceback (most recent call last):\n  <frame>\nValueError: bad",
        },
    )
    page = render_html(run)
    assert "The run raised an error" in page and "bad &lt;input&gt;" in page and "&lt;frame&gt;" in page
    assert "verdict-problems" in page


def test_large_runs_thin_chart_points_and_table_rows() -> None:
    samples = [{"iteration": i, "rss_bytes": 1000 + i} for i in range(10_001)]
    run = Run(
        name="big",
        samples=samples,
        sites=[
            {
                "site": f"s.py:{i}",
                "role": "activation",
                "bytes": i,
                "count": 1,
                "bytes_per_iteration": None,
                "source": "ledger",
            }
            for i in range(300)
        ],
    )
    rss = chart_specs(run)[0]["data"][0]
    assert len(rss["x"]) <= 4001 and rss["x"][-1] == 10_000
    page = render_html(run)
    assert "… and 100 more in the run JSON." in page


def test_same_run_same_page() -> None:
    run = make_run(findings=[*make_run().findings, Finding("inplace_saved", "error", "x", evidence={"op": "add_"})])
    assert render_html(run) == render_html(run)


def test_a_retained_graph_without_chain_says_so() -> None:
    run = Run(
        name="r", findings=[Finding("retained_graph", "error", "kept", evidence={"chain": [], "retained_nodes": 3})]
    )
    page = render_html(run)
    assert "No chain of referrers was recorded" in page and '<div class="chain">' not in page


def test_sparse_and_odd_records_still_render() -> None:
    """Runs from older or foreign writers: missing keys, strings where numbers were expected, nesting."""
    run = Run(
        name="odd",
        samples=[{"iteration": 0}, {"iteration": 1, "rss_bytes": "n/a", "ledger_bytes": None}, {"rss_bytes": 5}],
        top_owners=[{"owner": "x"}],
        sites=[{"site": "s.py:1", "bytes_per_iteration": "?"}],
        findings=[
            Finding(
                "growth", "warning", "m", evidence={"by_site": "nope", "by_role": [1], "nested": {"a": [1, {"b": 2}]}}
            ),
            Finding("retained_graph", "info", "m", evidence={"chain": ["root", {"label": 3}]}),
        ],
        growth={"signals": {"ledger": "bad"}, "window": [1, 2]},
        ledger_summary={"by_role": {"a": 1}},
    )
    page = render_html(run)
    assert '{"a": [1, {"b": 2}]}'.replace('"', "&#34;") in page
    assert ">root<" in page
    assert "odd" in render_text(run)
