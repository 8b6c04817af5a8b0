"""The HTML report in a real browser (headless Chromium): it paints, draws its charts, runs no injected
script and logs no error. Skipped where Chromium is not installed."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from memcheck.report import write_html
from tests.memcheck.report_fixtures import EVIL_OWNER, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium); browser checks skipped"
)
CHARTS = ("chart-rss", "chart-numpy", "chart-ledger", "chart-nodes")
TIMEOUT_S = 60


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with no network, no profile and no background services."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *args,
    ]
    env = {**os.environ, "HOME": str(tmp)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html(make_run(), tmp_path_factory.mktemp("html") / "report.html")


@pytest.fixture(scope="module")
def dumped(report: Path, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return chromium(tmp_path_factory.mktemp("dom"), "--dump-dom", report.as_uri())


def test_charts_are_drawn_inside_their_divs(dumped: subprocess.CompletedProcess[str]) -> None:
    dom = dumped.stdout
    assert 'data-charts-drawn="4"' in dom
    for chart_id in CHARTS:
        after = dom.split(f'id="{chart_id}"', 1)[1]
        upto_next = min(
            (after.find(f'id="{other}"') for other in CHARTS if f'id="{other}"' in after), default=len(after)
        )
        assert 'class="main-svg"' in after[:upto_next], f"{chart_id} has no plotly SVG"
    assert not re.search(r'class="[^"]*chart-failed', dom)


def test_no_injected_script_ran_and_the_names_show_as_text(dumped: subprocess.CompletedProcess[str]) -> None:
    dom = dumped.stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title and title.group(1).startswith("memcheck · soak_mlp")
    assert "pwned" not in title.group(1)
    assert '<img src="x"' not in dom and "<img src=x" not in dom  # no element was made from a name
    visible = EVIL_OWNER.replace("<", "&lt;").replace(">", "&gt;")  # how a DOM dump writes a text node
    assert visible in dom


def test_no_console_errors(dumped: subprocess.CompletedProcess[str]) -> None:
    console = [line for line in dumped.stderr.splitlines() if re.search(r"CONSOLE[:(]", line)]
    assert not console, "the page logged:\n" + "\n".join(console)


def test_screenshot_is_a_painted_report(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    width, height, rows = png_rows(shot.read_bytes(), limit=120)
    assert (width, height) == (1280, 2000)
    assert distinct_rows(shot.read_bytes()) > 300  # text, tables, charts: a blank page has 1
    r, g, b = rows[60][3 * 640 : 3 * 640 + 3]
    assert r > 150 and g < 110 and b < 110, f"banner pixel {(r, g, b)} is not the 'problems' red"


def test_a_batch_report_draws_with_the_shared_plotly_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    page = write_html(make_run(), folder / "a.html", shared_assets=True)
    assert len(list(folder.glob("plotly-*.min.js"))) == 1
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'data-charts-drawn="4"' in dom and not re.search(r'class="[^"]*chart-failed', dom)
    for script in folder.glob("plotly-*.min.js"):  # moved without it: the page says what is missing
        script.unlink()
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert "plotly.js did not load (keep plotly-" in dom


# -- a tiny PNG reader (zlib + struct), so the test needs no imaging library -------------------------


def _chunks(data: bytes) -> tuple[dict[str, int], bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            header = {"width": w, "height": h, "depth": depth, "color": color}
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header["depth"] == 8 and header["color"] in (2, 6), header
    return header, zlib.decompress(bytes(idat))


def distinct_rows(data: bytes) -> int:
    """Distinct filtered scanlines: a one-colour page compresses to a single repeated row."""
    header, raw = _chunks(data)
    stride = 1 + header["width"] * (3 if header["color"] == 2 else 4)
    return len({raw[i : i + stride] for i in range(0, len(raw), stride)})


def png_rows(data: bytes, limit: int) -> tuple[int, int, list[bytes]]:
    """The first ``limit`` rows unfiltered, as RGB bytes."""
    header, raw = _chunks(data)
    bpp = 3 if header["color"] == 2 else 4
    stride = header["width"] * bpp
    prev, rows = bytearray(stride), []
    for y in range(min(limit, header["height"])):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line if bpp == 3 else b"".join(line[j : j + 3] for j in range(0, stride, 4))))
        prev = line
    return header["width"], header["height"], rows
