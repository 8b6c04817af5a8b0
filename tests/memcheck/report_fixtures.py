"""Synthetic runs for the report tests: realistic numbers, every finding kind a writer draws specially,
and hostile text in every place user code controls (names, sites, roles, messages)."""

from __future__ import annotations

import math

from memcheck.findings import Finding
from memcheck.run import Run

EVIL_OWNER = "<img src=x onerror=\"document.title='pwned'\">"
EVIL_ROLE = "</script><script>document.title='pwned-role'</script>"
EVIL_SITE = "scenarios/<script>alert(1)</script>.py:7"
MARKUP_OWNER = "[bold red]not markup[/]"

CHAIN = [
    {"label": "history", "type": "list"},
    {"label": "history[417]", "type": "Tensor"},
    {"label": "loss.grad_fn (MseLossBackward)", "type": "Node"},
    {"label": "matmul#3 (saved: x, w)", "type": "Node"},
]
GROWTH_SITES = [
    {"site": "/work/proj/scenarios/soak_5000.py:33", "bytes_per_iteration": 32768.0},
    {"site": "/work/proj/agcore/ops/arith.py:88", "bytes_per_iteration": 16384.0},
]
ALL_SITES = [
    "/work/proj/scenarios/soak_5000.py:41",
    "/work/proj/scenarios/soak_5000.py:60",
    "/work/proj/scenarios/soak_5000.py:33",
    "/work/proj/scenarios/double_grad.py:22",
    "/work/proj/scenarios/alias.py:12",
    EVIL_SITE,
]
LEDGER_RATE = 49152  # bytes per iteration: activation 32 KiB + saved 16 KiB


def sample(i: int, it: int) -> dict:
    """One probe sample at iteration ``it`` (the ``i``-th sample); NumPy bytes only after sample 20."""
    activation = 1_048_576 + 32768 * it
    saved = 524_288 + 16384 * it
    by_role = {
        "param": 4_194_304,
        "grad": 4_194_304,
        "optimizer_state": 8_388_608,
        "activation": activation,
        "saved": saved,
        EVIL_ROLE: 4096,
    }
    return {
        "iteration": it,
        "t": round(0.025 * it, 4),
        "rss_bytes": 150_000_000 + 51_000 * it + int(400_000 * math.sin(i)),
        "numpy_bytes": None if i < 20 else 18_000_000 + 49_000 * it,
        "numpy_peak_bytes": None if i < 20 else 19_000_000 + 49_000 * it,
        "ledger_bytes": by_role,
        "ledger_total_bytes": sum(by_role.values()),
        "live_tensors": 40 + 6 * i,
        "live_nodes": 12 + 10 * i,
        "gc_counts": [i % 700, 3, 1],
        "gc_collections": i // 7,
        "gpu_used_bytes": None,
        "gpu_total_bytes": None,
    }


def findings() -> list[Finding]:
    return [
        Finding(
            "double_grad",
            "warning",
            "fc1.weight has two live gradient buffers and only one is written: accumulate into "
            "the existing .grad instead of wrapping a copy.",
            owner="fc1.weight",
            sites=["/work/proj/scenarios/double_grad.py:22"],
            bytes=802_816,
            evidence={
                "storage_bytes": 802_816,
                "grad_buffers": 2,
                "tensors": ["fc1.weight", "fc1.weight (copy)"],
                "wasted_bytes": 802_816,
            },
        ),
        Finding(
            "retained_graph",
            "error",
            "The graph of iteration 17 is still alive through `history`: store loss.item() "
            "(or loss.detach()) instead of the loss tensor.",
            owner="loss_history",
            sites=ALL_SITES[:2],
            bytes=4_915_200,
            evidence={"chain": CHAIN, "retained_nodes": 4900, "retained_bytes": 4_915_200, "iteration_made": 17},
        ),
        Finding(
            "growth",
            "error",
            "Memory grows by 48.0 KiB per iteration, mostly activations made at soak_5000.py:33: "
            "something keeps each iteration's graph alive.",
            owner="activation",
            sites=[GROWTH_SITES[0]["site"], GROWTH_SITES[1]["site"]],
            bytes=LEDGER_RATE * 390,
            evidence={
                "bytes_per_iteration": float(LEDGER_RATE),
                "by_role": {"activation": 32768.0, "saved": 16384.0},
                "by_site": GROWTH_SITES,
                "window": [100, 490],
                "probe": "ledger",
            },
        ),
        Finding(
            "aliased_buffers",
            "error",
            "Two live tensors share one buffer <b>after</b> a pool release: give each its own buffer.",
            owner=EVIL_OWNER,
            sites=[ALL_SITES[4], EVIL_SITE],
            bytes=65_536,
            evidence={"tensors": [EVIL_OWNER, "h2"], "overlap_bytes": 65_536},
        ),
        Finding(
            "ref_cycle",
            "info",
            "A reference cycle holds 2 tensors until the cyclic collector runs.",
            owner=MARKUP_OWNER,
            sites=["/work/proj/scenarios/cycle.py:9"],
            bytes=2048,
            evidence={"objects": 5, "tensors": 2},
        ),
    ]


def top_owners() -> list[dict]:
    rows = [
        {
            "owner": f"layer{i}.weight",
            "role": "param",
            "bytes": 1_000_000 - 40_000 * i,
            "count": 1,
            "site": "/work/proj/scenarios/model.py:14",
        }
        for i in range(10)
    ]
    rows.insert(0, {"owner": EVIL_OWNER, "role": "activation", "bytes": 2_000_000, "count": 3, "site": EVIL_SITE})
    rows.insert(0, {"owner": "loss_history", "role": "saved", "bytes": 4_915_200, "count": 4900, "site": ALL_SITES[0]})
    return rows


def soak_growth() -> dict:
    """Shaped like memcheck.soak's growth summary."""

    def estimate(slope: float) -> dict:
        return {
            "slope": slope,
            "lower": slope * 0.97,
            "upper": slope * 1.03,
            "recent": slope,
            "recent_lower": slope * 0.95,
            "rise": slope * 390,
            "noise": 1200.0,
            "n": 40,
            "span": 390.0,
            "certain": True,
        }

    return {
        "source": "soak",
        "bytes_per_iteration": float(LEDGER_RATE),
        "probe": "ledger",
        "certain": True,
        "warmup": 100,
        "window": [100, 490],
        "nodes_per_iteration": 1.0,
        "rss_bytes_per_iteration": 51000.0,
        "ledger_bytes_per_iteration": float(LEDGER_RATE),
        "by_role": {"activation": 32768.0, "saved": 16384.0, "param": 0.0},
        "by_site": GROWTH_SITES,
        "sites": [r["site"] for r in GROWTH_SITES],
        "traced_window": [440, 490],
        "signals": {"ledger": estimate(float(LEDGER_RATE)), "nodes": estimate(1.0), "rss": estimate(51000.0)},
        "stopped_at": 490,
    }


def make_run(**overrides) -> Run:
    """A 500-iteration soak sampled every 10 iterations that stopped early on a certain leak."""
    run = Run(
        name="soak_mlp",
        command="python scenarios/soak_5000.py --iterations 500 --out reports",
        mode="default",
        started_at="2025-11-13T10:00:00+00:00",
        duration_s=12.5,
        iterations=500,
        stopped_early=True,
        stop_reason="leak certain: +48.0 KiB/iter over 390 iterations",
        findings=findings(),
        samples=[sample(i, 10 * i) for i in range(50)],
        top_owners=top_owners(),
        sites=[
            {
                "site": ALL_SITES[2],
                "role": "activation",
                "bytes": 16_000_000,
                "count": 490,
                "bytes_per_iteration": 32768.0,
                "source": "ledger",
            },
            {
                "site": "/work/proj/agcore/ops/arith.py:88",
                "role": "saved",
                "bytes": 8_000_000,
                "count": 490,
                "bytes_per_iteration": 16384.0,
                "source": "tracemalloc",
            },
            {
                "site": ALL_SITES[3],
                "role": "grad",
                "bytes": 802_816,
                "count": 2,
                "bytes_per_iteration": None,
                "source": "ledger",
            },
            {
                "site": EVIL_SITE,
                "role": "activation",
                "bytes": 65_536,
                "count": 1,
                "bytes_per_iteration": 0.0,
                "source": "ledger",
            },
        ],
        ledger_summary={
            "records": 12_400,
            "live": 345,
            "live_bytes": 52_428_800,
            "by_role": {"activation": 17_000_000, "saved": 8_500_000, "param": 4_194_304},
        },
        growth=soak_growth(),
        metadata={
            "command": "python scenarios/soak_5000.py --iterations 500 --out reports",
            "python": "3.11.7",
            "versions": {"numpy": "2.4.6", "agcore": "0.1.0", "memcheck": "0.1.0"},
            "platform": "Linux-6.1-x86_64",
            "machine": "x86_64",
            "cpu_count": 2,
            "memory_total_bytes": 8_589_934_592,
            "hostname": "box",
            "pid": 4242,
        },
        samples_path="reports/soak_mlp.samples.jsonl",
    )
    for key, value in overrides.items():
        setattr(run, key, value)
    return run
