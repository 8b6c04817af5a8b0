"""The JSON report and the report folder: round trips, file names, errors that say what to do."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from memcheck.metadata import collect_metadata
from memcheck.report import ReportWriteError, write_json, write_reports
from memcheck.report.files import default_stem, slug
from memcheck.run import SCHEMA_VERSION, Run, RunFormatError
from tests.memcheck.report_fixtures import make_run, soak_growth

DOC = Path(__file__).resolve().parents[2] / "docs" / "run-json.md"


def test_json_round_trips_to_an_equal_run(tmp_path: Path) -> None:
    run = make_run()
    path = write_json(run, tmp_path / "run.json")
    assert path == tmp_path / "run.json"
    back = Run.from_json(path)
    assert back == run
    assert back.verdict == "problems"
    assert back.findings[1].evidence["chain"][0] == {"label": "history", "type": "list"}
    assert back.samples[0]["numpy_bytes"] is None and back.samples[-1]["numpy_bytes"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind


def test_json_is_plain_json_with_schema_and_verdict(tmp_path: Path) -> None:
    data = json.loads(write_json(make_run(), tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["schema"] == "memcheck.run" and data["schema_version"] == SCHEMA_VERSION
    assert data["verdict"] == "problems"
    assert data["samples"][3]["ledger_bytes"]["activation"] == 1_048_576 + 32768 * 30


def test_numpy_numbers_become_plain_json(tmp_path: Path) -> None:
    run = Run(
        name="np",
        iterations=int(np.int64(3)),
        samples=[{"iteration": 0, "rss_bytes": np.int64(1024), "gc_counts": np.array([1, 2, 3])}],
    )
    back = Run.from_json(write_json(run, tmp_path / "np.json"))
    assert back.samples[0]["rss_bytes"] == 1024 and back.samples[0]["gc_counts"] == [1, 2, 3]


def test_other_schema_versions_are_refused(tmp_path: Path) -> None:
    path = write_json(make_run(), tmp_path / "r.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RunFormatError, match=f"schema_version {SCHEMA_VERSION + 1}"):
        Run.from_json(path)


def test_write_reports_makes_the_folder_and_both_files(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    paths = write_reports(make_run(), out)
    assert set(paths) == {"json", "html"}
    assert re.fullmatch(r"soak_mlp-20251113-100000-\d{3}-[0-9a-f]{4}\.json", paths["json"].name)
    assert paths["html"] == paths["json"].with_suffix(".html")
    assert Run.from_json(paths["json"]) == make_run()
    assert paths["html"].read_text(encoding="utf-8").startswith("<!doctype html>")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    mode = paths["html"].stat().st_mode & 0o777
    assert mode & 0o044 == (0o666 & ~_umask()) & 0o044  # readable like any file the user writes


def test_explicit_stem_and_unsafe_stems(tmp_path: Path) -> None:
    paths = write_reports(make_run(), tmp_path, stem="mine")
    assert paths["json"].name == "mine.json"
    for bad in ("../escape", "a/b", "", ".."):
        with pytest.raises(ValueError, match="not a plain file name"):
            write_reports(make_run(), tmp_path, stem=bad)


def test_default_stem_is_a_safe_slug_of_name_and_start_time() -> None:
    run = make_run(name="my run/../<x>", started_at="2025-01-02T03:04:05+00:00")
    assert re.fullmatch(r"my-run-\.\.-x-20250102-030405-\d{3}-[0-9a-f]{4}", default_stem(run))
    assert default_stem(run) != default_stem(run)  # two runs in one millisecond still differ
    assert slug("  ") == "run" and slug("a" * 100) == "a" * 60
    undated = default_stem(make_run(started_at=""))
    assert re.fullmatch(r"soak_mlp-\d{8}-\d{6}-\d{3}-[0-9a-f]{4}", undated)


def test_unwritable_out_dir_raises_a_clear_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ReportWriteError, match="cannot create the report folder") as info:
        write_reports(make_run(), blocker / "sub")
    assert isinstance(info.value, OSError)
    assert str(blocker) in str(info.value) and "Choose another output folder" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root ignores permissions")
def test_read_only_out_dir_raises_a_clear_oserror(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ReportWriteError, match="cannot write"):
            write_reports(make_run(), locked)
    finally:
        locked.chmod(0o700)


def test_collect_metadata_is_plain_json_and_names_the_environment() -> None:
    meta = collect_metadata("python train.py --fast")
    assert json.loads(json.dumps(meta)) == meta
    assert meta["command"] == "python train.py --fast"
    assert meta["versions"]["numpy"] == np.__version__
    assert meta["versions"]["memcheck"] and meta["versions"]["agcore"]
    assert "cupy" in meta["versions"]
    assert meta["pid"] == os.getpid()
    assert isinstance(meta["memory_total_bytes"], int) and meta["memory_total_bytes"] > 2**20
    assert meta["cpu_count"] >= 1 and meta["machine"] and meta["hostname"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", meta["started_at"])
    assert isinstance(meta["argv"], list)


def test_docs_name_every_run_sample_and_metadata_field() -> None:
    doc = DOC.read_text(encoding="utf-8")
    fields = set(make_run().to_dict())
    fields |= set(make_run().samples[0])
    fields |= set(collect_metadata("x")) | set(collect_metadata("x")["versions"])
    fields |= set(soak_growth()) | set(soak_growth()["signals"]["ledger"])
    fields |= {
        "kind",
        "severity",
        "message",
        "owner",
        "sites",
        "bytes",
        "evidence",
        "chain",
        "retained_nodes",
        "retained_bytes",
        "iteration_made",
        "bytes_per_iteration",
        "by_role",
        "by_site",
        "window",
        "probe",
        "storage_bytes",
        "grad_buffers",
        "tensors",
        "wasted_bytes",
        "records",
        "live",
        "live_bytes",
    }
    missing = sorted(f for f in fields if f"`{f}`" not in doc)
    assert not missing, f"docs/run-json.md does not document {missing}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
