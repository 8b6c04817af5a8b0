"""The ledger: one record per buffer, live bytes by role, and its reconciliation with NumPy's tracemalloc domain."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import agcore as ag
import memcheck
from memcheck.ledger import Ledger
from memcheck.records import SiteRow
from tests.markers import marker_site


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


@pytest.fixture(autouse=True)
def _collect() -> None:
    gc.collect()


# -- the Ledger on its own ---------------------------------------------------------


def test_add_records_a_buffer_once_and_its_death() -> None:
    led = Ledger()
    t = ag.tensor(np.zeros((10, 10), "float32"), name="t")
    arr = np.ones(100, "float64")
    assert led.add(arr, "activation", t, ("model.py", 7), "g") is True
    assert led.add(arr, "activation", t, ("model.py", 8), "g") is False  # same array: one record
    assert led.live_bytes_by_role["activation"] == 800 and led.live_bytes == 800
    (rec,) = led.live_records()
    assert (rec.bytes, rec.shape, rec.dtype, rec.device, rec.role) == (800, (100,), "float64", "cpu", "activation")
    assert (rec.owner, rec.owner_name(), rec.site, rec.graph) == ("t", "t", "model.py:7", "g")
    assert rec.alive and rec.birth_iter == 0

    led.iteration = 5
    del arr
    assert led.live_bytes_by_role["activation"] == 0 and led.live_records() == []
    (dead,) = led.dead_records()
    assert (dead.death_iter, dead.birth_iter, dead.alive) == (5, 0, False)
    assert [r.id for r in led] == [dead.id] and len(led) == 1
    assert led.summary() == {
        "records": 1, "live": 0, "live_bytes": 0,
        "by_role": {"param": 0, "input": 0, "activation": 0, "grad": 0, "optimizer_state": 0},
    }  # fmt: skip


def test_a_new_array_at_a_reused_address_gets_its_own_record() -> None:
    led = Ledger()
    for _ in range(50):  # NumPy reuses addresses; a dead array's id must not hide a new one
        assert led.add(np.ones(16), "activation", None, "x:1", None) is True
    assert led.total_records == 50 and led.live == {} and len(led.dead_records()) == 50


def test_views_count_no_bytes_and_owner_names_follow_renames() -> None:
    led = Ledger()
    base = np.zeros((4, 4), "float32")
    t = ag.tensor([1.0], name=None)
    led.add(base, "param", t, "a:1", None)
    view = base[1:]
    led.add(view, "param", t, "a:2", None)
    recs = sorted(led.live_records(), key=lambda r: r.id)
    assert [(r.bytes, r.is_view) for r in recs] == [(64, False), (0, True)]
    t.name = "renamed"  # modules name parameters after creating them
    assert {r.owner_name() for r in led.live_records()} == {"renamed"}


def test_top_owners_and_sites_group_live_bytes() -> None:
    led = Ledger()
    w = ag.tensor(np.zeros(4, "float32"), name="w")
    keep = []
    for it in range(4):
        led.iteration = it
        keep.append(np.zeros(256, "float32"))  # 1 KiB born at one site every iteration
        led.add(keep[-1], "activation", None, ("loop.py", 3), None)
    led.add(w.data, "param", w, "model.py:1", None)
    top = led.top_owners()
    # an unnamed buffer is named as a user reads it: its role and the line that made it
    assert top[0] == {
        "owner": "activation from loop.py:3",
        "role": "activation",
        "bytes": 4096,
        "count": 4,
        "site": "loop.py:3",
    }
    assert top[1]["owner"] == "w" and top[1]["bytes"] == 16
    rows = {r.site: r for r in led.sites(iterations=4)}
    assert all(isinstance(r, SiteRow) for r in rows.values())
    assert rows["loop.py:3"].bytes == 4096 and rows["loop.py:3"].bytes_per_iteration == 1024.0
    assert rows["model.py:1"].bytes_per_iteration is None  # born once: not a rate
    assert all(r.source == "ledger" for r in rows.values())


# -- the ledger of a watched training step ---------------------------------------


def test_live_bytes_by_role_match_the_real_arrays() -> None:
    ag.manual_seed(0)
    with memcheck.watch(sample_every=1) as s:
        model = ag.nn.MLP([6, 8, 3])
        opt = ag.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = ag.randn(5, 6)
        y = np.array([0, 1, 2, 1, 0])
        for _ in range(3):
            opt.zero_grad()
            loss = ag.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            s.iteration()
        by_role = dict(s.ledger.live_bytes_by_role)
        params = model.parameters()
        assert by_role["param"] == sum(p.data.nbytes for p in params) == (6 * 8 + 8 + 8 * 3 + 3) * 4
        assert by_role["grad"] == sum(p.grad.nbytes for p in params)
        assert by_role["optimizer_state"] == sum(b.nbytes for st in opt.state.values() for b in st.values())
        assert by_role["input"] == x.data.nbytes
        assert by_role["activation"] == loss.data.nbytes  # only the loss is still referenced
        assert s.samples[-1]["ledger_bytes"] == by_role
        assert s.samples[-1]["ledger_total_bytes"] == sum(by_role.values())
        owners = {r.owner_name() for r in s.ledger.live_records() if r.role == "optimizer_state"}
        assert owners == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}


def test_unowned_numpy_bytes_appear_at_the_users_line() -> None:
    cache: list[np.ndarray] = []
    with memcheck.watch(name="reconcile", trace_sites=True) as s:
        raw = np.full((32, 32), 2.0, "float32")  # wrapped-below
        t = ag.as_tensor(raw, requires_grad=True, name="t")  # shares raw's storage: owned
        for _ in range(3):
            (t * t).sum().backward()
            cache.append(np.zeros(25_000))  # the-cache
            s.iteration()
    rows = [r for r in s.run.sites if r["source"] == "tracemalloc" and r["role"] == "unowned"]
    by_site = {r["site"]: r for r in rows}
    assert by_site[site("the-cache")]["bytes"] == 3 * 25_000 * 8 == sum(a.nbytes for a in cache)
    assert by_site[site("the-cache")]["count"] == 3
    assert site("wrapped-below") not in by_site  # as_tensor's storage is the tensor's
    assert rows[0]["site"] == site("the-cache")  # largest first
    assert s.run.ledger_summary["unowned_numpy_bytes"] >= 600_000
    assert s.run.ledger_summary["numpy_traced_bytes"] >= 600_000 + raw.nbytes
    assert not tracemalloc.is_tracing()  # the session started it, the session stopped it


def test_ledger_rows_sit_next_to_traced_rows_in_run_sites() -> None:
    with memcheck.watch(trace_sites=True) as s:
        w = ag.tensor(np.ones((16, 16), "float32"), requires_grad=True, name="w")  # w-line
        (w * 3).sum().backward()
    ledger_rows = {(r["site"], r["role"]): r for r in s.run.sites if r["source"] == "ledger"}
    assert ledger_rows[(site("w-line"), "param")]["bytes"] == 1024
    assert not [r for r in s.run.sites if r["role"] == "unowned" and r["site"] == site("w-line")]


def test_a_tensor_made_through_the_standard_library_is_born_at_the_users_line() -> None:
    import copy

    layer = ag.nn.Linear(4, 3)
    with memcheck.watch() as s:
        c = copy.deepcopy(layer)  # deep-copied
        rec = s.ledger.record_of(c.weight.data)
    assert rec is not None and rec.site == site("deep-copied")  # not a line of copy.py


def test_records_keep_their_shape_after_death_and_the_shared_shape_table_stays_small() -> None:
    from memcheck import ledger as ledger_module

    led = Ledger()
    arrays = [np.zeros((1, n), "float32") for n in range(1, 301)]  # 300 shapes: a sequence a token longer a step
    for a in arrays:
        led.add(a, "activation", None, ("train.py", 3), None)
    assert len(ledger_module._SHAPES) <= ledger_module._MAX_SHAPES
    del arrays, a
    dead = list(led.recent_dead)
    assert len(dead) == 64 and all(r.shape == (1, r.bytes // 4) for r in dead)  # the last, past the table's room
