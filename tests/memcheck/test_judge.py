"""The Judge on hand-built snapshots: every detector must fire and must stay silent, with no engine running.

Detectors are pure functions of an :class:`Observations`; these tests build the
snapshot field by field, so a detector's rule is tested apart from the Recorder
that feeds it. ``judge.merge`` is pure too: a finding seen again is the same
finding, and judging the same snapshot three times is judging it once.
"""

from __future__ import annotations

import copy
import gc
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import agcore as ag
import memcheck
from memcheck import foreign, judge
from memcheck.detectors import (
    accumulated_hooks,
    aliased_buffers,
    dangling_ref,
    double_grad,
    engine_errors,
    growth,
    inplace_saved,
    ref_cycle,
    retained_graph,
)
from memcheck.findings import KINDS, Finding
from memcheck.observations import Observations
from memcheck.records import (
    BufferSpan,
    CaughtError,
    CycleSummary,
    GrowingContainer,
    Holder,
    Hop,
    InplaceEvent,
    LeafView,
    Retention,
    Sample,
)
from tests.markers import marker_site

# -- building blocks ---------------------------------------------------------------------------


def leaf(name: str, storage: int, grad: int | None = None, span: tuple[int, int] | None = None, order: int = 1,
         writes: int = 1, nbytes: int = 512) -> LeafView:  # fmt: skip
    return LeafView(
        name=name, site=f"model.py:{order}", order=order, requires_grad=True, storage=storage, storage_bytes=nbytes,
        grad=grad, grad_span=span, grad_bytes=nbytes if grad is not None else 0, grad_writes=writes,
    )  # fmt: skip


HISTORY = Holder(
    name="local 'history' of main()",
    kind="local",
    chain=(Hop("main() at train.py:3", "frame"), Hop("local 'history' of main() (list)", "list")),
    lines=("train.py:12",),
    executed=True,
)


SNAPSHOTS = Holder(
    name="global 'SNAPSHOTS' in train",
    kind="global",
    chain=(Hop("module train", "dict"), Hop("global 'SNAPSHOTS' (list)", "list")),
    lines=("train.py:40",),
    executed=True,
)


def container(same: int = 1, same_type: str = "ndarray", holder: Holder = HISTORY, rate: float = 1.0,
              bpi: float = 1024.0, item_type: str = "ndarray") -> GrowingContainer:  # fmt: skip
    return GrowingContainer(holder=holder, items=40, items_per_iteration=rate, bytes_per_iteration=bpi,
                            item_type=item_type, same_item=same, same_item_type=same_type)  # fmt: skip


def inplace(by_optimizer: bool = False, site: str = "train.py:9", saved_site: str = "train.py:7") -> InplaceEvent:
    return InplaceEvent(owner="w", op="mul_", site=site, saved_by="MulBackward", saved_site=saved_site, saved_version=0,
                        version=1, bytes=12, iteration=3, nodes=1, by_optimizer=by_optimizer)  # fmt: skip


def samples(
    values: list[float], field: str = "ledger_total_bytes", teardown: float | None = None
) -> tuple[Sample, ...]:
    out = [Sample(iteration=i, t=i * 0.01, **{field: int(v)}) for i, v in enumerate(values)]
    if teardown is not None:
        out.append(Sample(iteration=len(values) - 1, t=len(values) * 0.01, phase="teardown", **{field: int(teardown)}))
    return tuple(out)


def retention(
    iterations: int = 5, nodes: int = 15, holder: Holder | None = HISTORY, seen: int | None = None
) -> Retention:
    return Retention(nodes=nodes, iterations=iterations, seen_iterations=iterations if seen is None else seen,
                     first_iteration=0, bytes=4096, array_bytes=1024, node_bytes=3072, made_at="train.py:9",
                     holder=holder)  # fmt: skip


def reported_dangling(site: str = "engine.py:3", owner: str = "mul.child") -> Finding:
    return Finding(kind="dangling_ref", severity="error", message="edge to a dead referent", owner=owner,
                   sites=[site, "train.py:5"], evidence={"occurrences": 1})  # fmt: skip


def cycles(closing: tuple[str, ...] = ("train.py:4",)) -> CycleSummary:
    return CycleSummary(buffers=10, bytes=100_000, by_owner=(("cached", 10),), by_site=(("train.py:6", 10),),
                        collections=2, closing_lines=closing)  # fmt: skip


def caught(kind: str = "GraphReleasedError", sites: tuple[str, ...] = ("train.py:20", "train.py:18")) -> CaughtError:
    return CaughtError(type=kind, message="backward through a released graph", sites=sites, caught=True)


def snapshot(**kw: Any) -> Observations:
    return Observations(iteration=kw.pop("iteration", 100), **kw)


def run(detect: Any, obs: Observations) -> list[Finding]:
    """``detect(obs)``, checking that the snapshot was not changed by it."""
    before = copy.deepcopy(obs)
    found = detect(obs.errors) if detect is engine_errors.detect else detect(obs)
    assert obs == before, "a detector changed its snapshot"
    return found


# -- double_grad ------------------------------------------------------------------------------


def test_double_grad_fires_on_one_storage_with_two_gradient_buffers() -> None:
    obs = snapshot(leaves=(leaf("w", 1, grad=10, order=1), leaf("w_copy", 1, grad=11, order=2, writes=0)))
    (f,) = run(double_grad.detect, obs)
    assert (f.kind, f.severity, f.owner) == ("double_grad", "error", "w")
    assert f.evidence["tensors"] == ["w_copy", "w"]  # the later wrap first: it is the duplicate
    assert f.evidence["never_written_by_backward"] == ["w_copy"] and f.bytes == 512
    assert f.sites == ["model.py:2", "model.py:1"]


def test_double_grad_silent_on_one_gradient_one_shared_gradient_or_distinct_storages() -> None:
    assert run(double_grad.detect, snapshot(leaves=(leaf("w", 1, grad=10), leaf("frozen", 1)))) == []
    assert run(double_grad.detect, snapshot(leaves=(leaf("a", 1, grad=10), leaf("b", 1, grad=10, order=2)))) == []
    assert run(double_grad.detect, snapshot(leaves=(leaf("a", 1, grad=10), leaf("b", 2, grad=11, order=2)))) == []


# -- dangling_ref --------------------------------------------------------------------------------


def test_dangling_ref_merges_reports_of_one_edge_without_changing_them() -> None:
    first, again, other = reported_dangling(), reported_dangling(), reported_dangling(site="engine.py:9")
    obs = snapshot(reported=(first, again, other))
    found = run(dangling_ref.detect, obs)
    assert len(found) == 2
    assert [f.evidence["occurrences"] for f in found] == [2, 1]
    assert first.evidence == {"occurrences": 1}  # what the adapter reported is not changed
    assert run(dangling_ref.detect, obs) == found  # and judging again says the same


def test_dangling_ref_silent_without_reports_of_its_kind() -> None:
    other = replace(reported_dangling(), kind="aliased_buffers")
    assert run(dangling_ref.detect, snapshot(reported=(other,))) == []
    assert run(dangling_ref.detect, snapshot()) == []


# -- aliased_buffers ----------------------------------------------------------------------------


def test_aliased_buffers_fires_on_overlapping_gradients() -> None:
    obs = snapshot(leaves=(leaf("p", 1, grad=10, span=(1000, 1128)), leaf("q", 2, grad=11, span=(1064, 1192))))
    (f,) = run(aliased_buffers.detect, obs)
    assert (f.kind, f.severity, f.bytes) == ("aliased_buffers", "error", 64)
    assert f.evidence["what"] == "grad" and sorted(f.evidence["tensors"]) == ["p", "q"]


def test_aliased_buffers_fires_on_two_tensors_holding_the_same_gradient_array() -> None:
    obs = snapshot(leaves=(leaf("p", 1, grad=10, span=(1000, 1128)), leaf("q", 2, grad=10, span=(1000, 1128))))
    (f,) = run(aliased_buffers.detect, obs)
    assert f.bytes == 128 and f.evidence["same_array"] is True


def test_aliased_buffers_fires_on_two_arrays_over_the_same_bytes() -> None:
    obs = snapshot(buffers=(BufferSpan(1, 5000, 5256, "ta", "pool.py:3"), BufferSpan(2, 5000, 5256, "tb", "pool.py:4")))
    (f,) = run(aliased_buffers.detect, obs)
    assert f.evidence["what"] == "data" and f.bytes == 256
    assert set(f.sites) == {"pool.py:3", "pool.py:4"}


def test_aliased_buffers_fires_on_the_same_array_repeated_in_a_container() -> None:
    obs = snapshot(containers=(container(same=12, same_type="ndarray"),))
    (f,) = run(aliased_buffers.detect, obs)
    assert f.evidence["what"] == "container" and f.evidence["repeats"] == 12
    assert f.owner == HISTORY.name and f.sites[0] == "train.py:12"


def test_aliased_buffers_merges_a_pool_report_into_the_overlap_it_explains() -> None:
    pool = Finding(kind="aliased_buffers", severity="error", message="released twice", owner="pool",
                   sites=["pool.py:20"], evidence={"pointer": 5010})  # fmt: skip
    spans = (BufferSpan(1, 5000, 5256, "ta", "pool.py:3"), BufferSpan(2, 5000, 5256, "tb", "pool.py:4"))
    obs = snapshot(buffers=spans, reported=(pool,))
    (f,) = run(aliased_buffers.detect, obs)
    assert f.sites[0] == "pool.py:20" and f.evidence["pool"] == {"pointer": 5010}
    assert pool.sites == ["pool.py:20"] and pool.evidence == {"pointer": 5010}  # the report is not changed
    assert run(aliased_buffers.detect, obs) == [f]  # a second judgement keeps the pool's line first


def test_aliased_buffers_silent_on_adjacent_spans_one_base_and_distinct_items() -> None:
    adjacent = snapshot(leaves=(leaf("p", 1, grad=10, span=(1000, 1128)), leaf("q", 2, grad=11, span=(1128, 1256))))
    assert run(aliased_buffers.detect, adjacent) == []
    one_base = snapshot(buffers=(BufferSpan(1, 5000, 5256, "t", "a.py:1"),))  # views collapse onto their base
    assert run(aliased_buffers.detect, one_base) == []
    assert run(aliased_buffers.detect, snapshot(containers=(container(same=1),))) == []
    assert run(aliased_buffers.detect, snapshot(containers=(container(same=2),))) == []
    floats = container(same=40, same_type="float", item_type="float")  # one float appended again: not a buffer
    assert run(aliased_buffers.detect, snapshot(containers=(floats,))) == []


# -- inplace_saved ---------------------------------------------------------------------------------


def test_inplace_saved_warns_with_the_change_first_and_once_per_pair() -> None:
    obs = snapshot(inplace=(inplace(), inplace(), inplace(site="train.py:30")))
    found = run(inplace_saved.detect, obs)
    assert [f.sites for f in found] == [["train.py:9", "train.py:7"], ["train.py:30", "train.py:7"]]
    assert all(f.severity == "warning" and f.owner == "w" for f in found)
    assert "mul_()" in found[0].message and "MulBackward" in found[0].message


def test_inplace_saved_silent_on_optimizer_steps() -> None:
    assert run(inplace_saved.detect, snapshot(inplace=(inplace(by_optimizer=True),) * 3)) == []


# -- retained_graph ----------------------------------------------------------------------------------


def test_retained_graph_names_the_holder_and_its_line_first() -> None:
    (f,) = run(retained_graph.detect, snapshot(retention=retention()))
    assert (f.kind, f.severity, f.owner) == ("retained_graph", "error", HISTORY.name)
    assert f.sites == ["train.py:12", "train.py:9"]  # the line that put it there, then where it was made
    assert f.evidence["chain"] == [h.to_dict() for h in HISTORY.chain]
    assert f.evidence["bytes_per_iteration"] == pytest.approx(4096 / 5)


def test_retained_graph_without_a_holder_still_says_where_it_was_made() -> None:
    (f,) = run(retained_graph.detect, snapshot(retention=retention(holder=None)))
    assert f.owner is None and f.sites == ["train.py:9"] and f.evidence["chain"] == []


def test_retained_graph_silent_without_retention_or_for_one_graph_a_variable_still_holds() -> None:
    assert run(retained_graph.detect, snapshot()) == []
    assert run(retained_graph.detect, snapshot(retention=retention(nodes=0))) == []
    assert run(retained_graph.detect, snapshot(retention=retention(iterations=1))) == []


def test_retained_graph_counts_recorded_iterations_not_a_sampled_windows_weight() -> None:
    # one stale graph recorded in a sampled window weighs as six iterations in the byte estimate
    assert run(retained_graph.detect, snapshot(retention=retention(iterations=6, seen=1))) == []
    (f,) = run(retained_graph.detect, snapshot(retention=retention(iterations=6, seen=2)))
    assert f.evidence["iterations_retained"] == 6


# -- growth ----------------------------------------------------------------------------------------


def test_growth_fires_on_a_certain_rise_with_its_holder() -> None:
    obs = snapshot(samples=samples([10_000 + 2048 * i for i in range(100)]), containers=(container(bpi=2048),))
    (f,) = run(growth.detect, obs)
    assert (f.kind, f.severity, f.owner) == ("growth", "error", HISTORY.name)
    assert f.evidence["bytes_per_iteration"] == pytest.approx(2048, rel=0.01)
    assert f.evidence["probe"] == "ledger" and f.sites[0] == "train.py:12"
    assert f.evidence["holder"]["name"] == HISTORY.name and f.evidence["items_per_iteration"] == 1.0


def test_growth_prefers_a_holder_the_users_code_reaches_to_a_librarys_table() -> None:
    library = Holder(name="global '_cache' in re", kind="global", chain=(Hop("module re", "dict"),), lines=())
    theirs = replace(container(holder=library, bpi=4096), user_root=False)  # re's pattern cache, grown by an import
    rising = samples([10_000 + 2048 * i for i in range(100)])
    (f,) = run(growth.detect, snapshot(samples=rising, containers=(theirs, container(bpi=512))))
    assert f.owner == HISTORY.name
    (alone,) = run(growth.detect, snapshot(samples=rising, containers=(theirs,)))  # none of the user's: theirs
    assert alone.owner == library.name


def test_growth_after_the_loop_is_judged_on_the_loop_a_teardown_drop_cancels_nothing() -> None:
    obs = snapshot(samples=samples([10_000 + 2048 * i for i in range(100)], teardown=0))
    (f,) = run(growth.detect, obs)
    assert f.evidence["bytes_per_iteration"] == pytest.approx(2048, rel=0.01)


def test_growth_borrows_the_holder_of_graphs_that_pile_up() -> None:
    obs = snapshot(samples=samples([10_000 + 2048 * i for i in range(100)]), retention=retention())
    (f,) = run(growth.detect, obs)
    assert f.owner == HISTORY.name


@pytest.mark.parametrize(
    "values",
    [
        [50_000.0] * 100,  # flat
        [1000.0 * min(i, 10) + 50_000 for i in range(100)],  # a warm-up ramp, then flat
        [50_000.0 + 2048 * (i % 20) for i in range(100)],  # a sawtooth: a cache cleared every 20 iterations
        [50_000.0 + (7 if i % 2 else -7) for i in range(100)],  # noise
    ],
    ids=["flat", "warmup", "sawtooth", "noise"],
)
def test_growth_silent_on_flat_warmup_sawtooth_and_noise(values: list[float]) -> None:
    assert run(growth.detect, snapshot(samples=samples(values))) == []


def test_growth_silent_on_too_few_samples() -> None:
    assert run(growth.detect, snapshot(samples=samples([1000.0 * i for i in range(5)]))) == []


def test_py_blocks_growth_needs_a_container_that_explains_it() -> None:
    rising = samples([100_000 + 20 * i for i in range(100)], field="py_blocks")
    assert run(growth.detect, snapshot(samples=rising)) == []
    holder = container(bpi=1280, item_type="dict", same_type="dict")
    (f,) = run(growth.detect, snapshot(samples=rising, containers=(holder,)))
    assert f.evidence["probe"] == "py_blocks" and f.owner == HISTORY.name


# -- accumulated_hooks ---------------------------------------------------------------------------

HOOKS = Holder(name="local 'p' of train()", kind="local", chain=(Hop("train() at train.py:3", "frame"),),
               lines=("train.py:23",), executed=True)  # fmt: skip


def hook_list(label: str, repeats: int = 40, rate: float = 1.0, name: str = "GradStats.hook()") -> GrowingContainer:
    return replace(container(holder=HOOKS, rate=rate, bpi=64.0 * rate, item_type="method"), items=120,
                   same_callable=repeats, callable_name=name, attribute_of=label, counted_at=100)  # fmt: skip


def test_accumulated_hooks_fires_once_per_function_over_every_list_it_piles_up_in() -> None:
    obs = snapshot(containers=(hook_list("Parameter 'b'._hooks"), hook_list("Parameter 'w'._hooks"),
                               hook_list("Trainer.callbacks", name="Trainer.log()")))  # fmt: skip
    found = run(accumulated_hooks.detect, obs)
    assert [f.evidence["function"] for f in found] == ["GradStats.hook()", "Trainer.log()"]
    f = found[0]
    assert (f.kind, f.severity, f.owner) == ("accumulated_hooks", "error", "Parameter 'b'._hooks")
    assert f.sites == ["train.py:23"]
    assert f.evidence["holders"] == ["Parameter 'b'._hooks", "Parameter 'w'._hooks"]
    assert f.evidence["entries_per_iteration"] == 2.0 and f.evidence["entries"] == 240
    assert f.bytes == 240 * 64 and "and 1 more like it gain 2 entries per iteration (240 now)" in f.message
    assert f.evidence["holder"]["name"] == "Parameter 'b'._hooks"  # who holds them: the list, as the owner says
    later = run(accumulated_hooks.detect, replace(obs, iteration=150))[0]  # no scan since: they grew on
    assert later.evidence["entries"] == 340 and "(about 340 by now)" in later.message


def test_accumulated_hooks_silent_on_slow_lists_distinct_functions_and_plain_items() -> None:
    slow = hook_list("Parameter 'w'._hooks", rate=0.1)  # a hook an epoch: setup, not the loop
    mixed = hook_list("Trainer.callbacks", repeats=3)  # distinct callbacks, each once
    plain = container(item_type="float")  # a loss history
    assert run(accumulated_hooks.detect, snapshot(containers=(slow, mixed, plain))) == []


def test_growth_leaves_a_slow_list_of_a_piled_up_hook_to_accumulated_hooks_but_names_a_store_of_arrays() -> None:
    # hooks registered once an epoch on every parameter, their handles kept: the handles list piles up (a hook
    # list), each parameter's own list gains one an epoch (too slow to be one), and Python's blocks rise certainly
    rising = samples([100_000 + 20 * i for i in range(100)], field="py_blocks")
    handles = hook_list("NormLogger.handles", rate=0.75, name="a lambda in NormLogger.attach()")
    own = replace(hook_list("Parameter 'w'._hooks", rate=0.125, name="a lambda in NormLogger.attach()"),
                  holder=replace(HISTORY, name="Experiment.opt"))  # fmt: skip
    findings = judge.judge(snapshot(samples=rising, containers=(handles, own)))
    assert [(f.kind, f.owner) for f in findings] == [("accumulated_hooks", "NormLogger.handles")]
    # the same slow list whose closures each keep 4 KiB is a store of arrays: growth's, named, hooks or not
    heavy = replace(own, bytes_per_iteration=512.0)
    (grew,) = run(growth.detect, snapshot(samples=rising, containers=(handles, heavy)))
    assert grew.owner == "Experiment.opt"
    # and with no hook list piling that function up, the slow list is growth's holder as before
    (alone,) = run(growth.detect, snapshot(samples=rising, containers=(own,)))
    assert alone.owner == "Experiment.opt"


def test_merge_keeps_the_line_seen_running_over_a_later_guess_of_one_holder() -> None:
    guessed = replace(HOOKS, lines=("train.py:19", "train.py:23"), executed=False)
    early = judge.judge(snapshot(containers=(replace(hook_list("Parameter 'w'._hooks"), holder=guessed),)))
    seen = judge.judge(snapshot(containers=(hook_list("Parameter 'w'._hooks"),)))
    for order in ((early, seen), (seen, early)):
        out = judge.merge(judge.merge({}, order[0]), order[1])
        (f,) = [f for f in out.values() if f.kind == "accumulated_hooks"]
        assert f.sites == ["train.py:23"]


# -- ref_cycle ---------------------------------------------------------------------------------------


def test_ref_cycle_names_the_closing_line_first() -> None:
    (f,) = run(ref_cycle.detect, snapshot(cycles=cycles()))
    assert (f.kind, f.severity, f.owner) == ("ref_cycle", "warning", "cached")
    assert f.sites == ["train.py:4", "train.py:6"] and f.bytes == 100_000
    assert f.evidence["closing_lines"] == ["train.py:4"] and f.evidence["buffers"] == 10


def test_ref_cycle_is_an_error_where_the_program_turned_the_collector_off() -> None:
    (f,) = run(ref_cycle.detect, snapshot(cycles=replace(cycles(), collector_off=True)))
    assert (f.kind, f.severity, f.evidence["collector_off"]) == ("ref_cycle", "error", True)
    assert "gc.disable()" in f.message and "never be freed" in f.message
    (on,) = run(ref_cycle.detect, snapshot(cycles=cycles()))
    assert on.severity == "warning" and "never be freed" not in on.message


def test_ref_cycle_silent_without_cyclic_deaths() -> None:
    assert run(ref_cycle.detect, snapshot()) == []
    assert run(ref_cycle.detect, snapshot(cycles=replace(cycles(), buffers=0))) == []


def test_growth_with_no_holder_beside_cycles_the_program_never_frees_is_those_cycles() -> None:
    grows = {"samples": samples([i * 4096.0 for i in range(40)])}
    never = judge.judge(snapshot(cycles=replace(cycles(), bytes=1000, collector_off=True), **grows))
    assert [f.kind for f in judge.merge({}, never).values()] == ["ref_cycle"]  # one cause, said once
    collected = judge.judge(snapshot(cycles=replace(cycles(), bytes=1000), **grows))  # 1 KB of cycles, 160 KB grown
    assert sorted(f.kind for f in judge.merge({}, collected).values()) == ["growth", "ref_cycle"]


def test_ref_cycle_silent_on_one_structure_made_once_and_freed_after_the_loop() -> None:
    once = replace(cycles(), first_freed_at=100, birth_iterations=2)  # a model and its gradients, freed at the end
    assert run(ref_cycle.detect, snapshot(cycles=once, iteration=100)) == []
    # but a cycle freed while the loop ran, made in many iterations, or never freed without the collector is one
    for again in (
        replace(once, first_freed_at=40),
        replace(once, birth_iterations=3),
        replace(once, collector_off=True),
    ):
        assert [f.kind for f in run(ref_cycle.detect, snapshot(cycles=again, iteration=100))] == ["ref_cycle"]
    assert len(run(ref_cycle.detect, snapshot(cycles=replace(once, first_freed_at=0), iteration=0))) == 1  # no loop


# -- engine_errors -----------------------------------------------------------------------------------


def test_engine_errors_become_findings_even_when_caught() -> None:
    released = caught()
    changed = caught("InplaceModifiedError", sites=("train.py:30", "train.py:25", "train.py:27"))
    found = run(engine_errors.detect, snapshot(errors=(released, released, changed)))
    assert [(f.kind, f.severity) for f in found] == [("dangling_ref", "error"), ("inplace_saved", "error")]
    assert found[0].sites[0] == "train.py:20" and found[0].evidence["caught"] is True
    assert "caught it" in found[0].message
    assert found[1].sites == ["train.py:27", "train.py:25", "train.py:30"]  # the change, the save, the backward


def test_an_engine_error_caught_every_iteration_says_how_often_and_whose_it_is() -> None:
    every_step = replace(caught("InplaceModifiedError", sites=("/work/train.py:30", "/work/train.py:25")),
                         message="saved by the op at /work/train.py:25, modified at /work/train.py:30", owner="logits",
                         count=1500, first_iteration=0, last_iteration=1499)  # fmt: skip
    (f,) = engine_errors.detect((every_step,), cwd="/work")
    assert f.owner == "logits" and (f.evidence["times"], f.evidence["last_iteration"]) == (1500, 1499)
    assert f.message.startswith("Backward failed 1500 times (iterations 0-1499; the program caught it each time")
    assert "by the op at train.py:25, modified at train.py:30" in f.message  # sites as the at lines name them
    assert f.sites == ["/work/train.py:25", "/work/train.py:30"]  # the findings keep full sites
    (once,) = engine_errors.detect((caught(),))
    assert "(the program caught it and went on)" in once.message and " times" not in once.message


def test_engine_errors_silent_on_other_errors() -> None:
    assert run(engine_errors.detect, snapshot(errors=(caught("ValueError"),))) == []


# -- judge and merge --------------------------------------------------------------------------------


def every_kind() -> Observations:
    """A snapshot on which every detector fires."""
    return snapshot(
        samples=samples([10_000 + 2048 * i for i in range(100)]),
        leaves=(
            leaf("w", 1, grad=10, order=1, span=(100, 612)),
            leaf("w_copy", 1, grad=11, order=2, span=(1000, 1512)),
            leaf("p", 3, grad=12, order=3, span=(2000, 2128)),
            leaf("q", 4, grad=13, order=4, span=(2064, 2192)),
        ),
        inplace=(inplace(), inplace(by_optimizer=True)),
        errors=(caught(),),
        reported=(reported_dangling(),),
        retention=retention(),
        containers=(container(same=12, holder=SNAPSHOTS),),  # another holder than the retained graph's
        cycles=cycles(),
    )


def test_every_detector_fires_on_the_every_kind_snapshot() -> None:
    obs = every_kind()
    before = copy.deepcopy(obs)
    found = judge.judge(obs)
    assert obs == before
    assert {f.kind for f in found} == {
        "double_grad", "dangling_ref", "aliased_buffers", "inplace_saved", "retained_graph", "growth", "ref_cycle",
    }  # fmt: skip
    assert {f.kind for f in found} <= set(KINDS)
    ranks = [("info", "warning", "error").index(f.severity) for f in found]
    assert ranks == sorted(ranks, reverse=True)  # most severe first


def test_an_empty_snapshot_has_no_findings() -> None:
    assert judge.judge(Observations()) == []


def _dicts(table: dict[Any, Finding]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in judge.ordered(list(table.values()))]


def test_judging_three_times_is_judging_once_for_every_kind() -> None:
    obs = every_kind()
    once = judge.merge({}, judge.judge(obs))
    thrice: dict[Any, Finding] = {}
    for _ in range(3):
        thrice = judge.merge(thrice, judge.judge(obs))
    assert _dicts(thrice) == _dicts(once)
    kinds = {f.kind for f in once.values()}
    assert kinds == {"double_grad", "dangling_ref", "aliased_buffers", "inplace_saved", "retained_graph", "growth",
                     "ref_cycle"}  # fmt: skip


def test_merge_copies_and_never_changes_its_inputs() -> None:
    old = judge.merge({}, judge.judge(every_kind()))
    new = judge.judge(every_kind())
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    out = judge.merge(old, new)
    assert out is not old
    assert old == old_copy and new == new_copy
    assert judge.merge(out, new) == out  # idempotent


def test_merge_keeps_what_an_earlier_check_found_and_the_holder_it_named() -> None:
    named = judge.judge(snapshot(retention=retention()))
    seen = judge.merge({}, named)
    # later the holder is gone (the loop ended): the graph is still retained, no holder named
    later = judge.judge(snapshot(retention=retention(holder=None, iterations=8)))
    out = judge.merge(seen, later)
    (f,) = out.values()
    assert f.owner == HISTORY.name
    # and a check that finds nothing any more takes nothing away
    assert judge.merge(out, judge.judge(snapshot())) == out


def test_merge_keeps_one_growth_and_one_retained_graph_per_session() -> None:
    first = judge.judge(snapshot(retention=retention()))
    other = Holder(name="global 'CACHE' in train", kind="global", chain=(), lines=("train.py:40",))
    second = judge.judge(snapshot(retention=retention(holder=other, iterations=9)))
    out = judge.merge(judge.merge({}, first), second)
    (f,) = out.values()
    assert f.owner == "global 'CACHE' in train" and f.evidence["iterations_retained"] == 9  # the fresher numbers


def test_merge_tells_apart_problems_of_one_kind_at_different_lines() -> None:
    a = judge.judge(snapshot(inplace=(inplace(),)))
    b = judge.judge(snapshot(inplace=(inplace(site="train.py:50"),)))
    assert len(judge.merge(judge.merge({}, a), b)) == 2


# -- session.check(): three calls, the findings of one, for every kind -----------------------------


def _double_grad(s: Any) -> None:
    storage = np.ones((8, 4), "float32")
    a = ag.as_tensor(storage, requires_grad=True, name="a")
    b = ag.as_tensor(storage, requires_grad=True, name="b")
    ((a * 2).sum() + (b * 3).sum()).backward()
    s.keep = (a, b)


def _dangling_ref(s: Any) -> None:
    class Child:
        pass

    child = Child()
    edge = foreign.weak_edge(child, label="mul.child")
    del child
    edge()
    edge()


def _aliased_buffers(s: Any) -> None:
    p = ag.tensor(np.ones(32, "float32"), requires_grad=True, name="p")
    q = ag.tensor(np.ones(32, "float32"), requires_grad=True, name="q")
    buf = np.zeros(32, "float32")
    foreign.released(buf, owner="grad pool")
    foreign.released(buf, owner="grad pool")  # released-twice
    p.grad = buf
    q.grad = buf
    s.keep = (p, q)


def _inplace_saved(s: Any) -> None:
    a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True, name="a")
    w = ag.tensor([4.0, 5.0, 6.0], name="w")
    s.keep = a * w
    w.mul_(2)


def _retained_graph(s: Any) -> None:
    history = []
    w = ag.randn(8, 8, requires_grad=True)
    for _ in range(12):
        loss = (ag.randn(4, 8) @ w).sum()
        loss.backward()
        history.append(loss)
        s.iteration()
    s.keep = history


def _growth(s: Any) -> None:
    keep = []
    w = ag.randn(16, 16, requires_grad=True)
    for _ in range(60):
        keep.append((ag.randn(32, 16) @ w).relu().detach())
        s.sample()
        s.iteration()
    s.keep = keep


class _Cyclic:
    pass


def _ref_cycle(s: Any) -> None:
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(12):
            obj = _Cyclic()
            obj.me = obj
            obj.t = ag.tensor(np.zeros(1000, "float32"), name="cached")
            del obj
            s.iteration()
    finally:
        if enabled:
            gc.enable()


def _caught_error(s: Any) -> None:
    a = ag.tensor([1.0, 2.0], requires_grad=True)
    loss = (a * a).sum()
    loss.backward()
    try:
        loss.backward()
    except ag.GraphReleasedError:
        pass


CASES = {
    "double_grad": _double_grad,
    "dangling_ref": _dangling_ref,
    "aliased_buffers": _aliased_buffers,
    "inplace_saved": _inplace_saved,
    "retained_graph": _retained_graph,
    "growth": _growth,
    "ref_cycle": _ref_cycle,
    "caught_error": _caught_error,
}


@pytest.mark.parametrize("kind", list(CASES))
def test_check_three_times_gives_the_findings_of_once(kind: str) -> None:
    gc.collect()
    with memcheck.watch(boundaries="user") as s:
        CASES[kind](s)
        once = [f.to_dict() for f in s.check()]
        again = [f.to_dict() for f in s.check()]
        third = [f.to_dict() for f in s.check()]
        s.keep = None
    expected = "dangling_ref" if kind == "caught_error" else kind
    assert expected in {f["kind"] for f in once}, once
    assert again == once and third == once
    final = [f.to_dict() for f in s.findings]  # the check at exit changes none of them either
    for f in once:
        if f["kind"] in ("double_grad", "dangling_ref", "aliased_buffers", "inplace_saved"):
            assert f in final


def test_a_pool_report_keeps_its_lines_first_over_repeated_checks() -> None:
    with memcheck.watch(boundaries="user") as s:
        _aliased_buffers(s)
        firsts = [next(f for f in s.check() if f.kind == "aliased_buffers").sites[0] for _ in range(3)]
        s.keep = None
    assert firsts == [marker_site(__file__, "released-twice")] * 3


def test_growth_takes_a_soaks_verdict_when_one_ran() -> None:
    rising = samples([10_000 + 2048 * i for i in range(100)])
    soak_says_flat = {"source": "soak", "certain": False, "bytes_per_iteration": 3.0, "probe": "ledger"}
    assert run(growth.detect, snapshot(samples=rising, growth=soak_says_flat)) == []
    by_site = [{"site": "train.py:30", "bytes_per_iteration": 4096.0}]
    soak_says_leak = {"source": "soak", "certain": True, "bytes_per_iteration": 4096.0, "probe": "heap",
                      "window": [50, 400], "by_site": by_site}  # fmt: skip
    (f,) = run(growth.detect, snapshot(samples=samples([5.0] * 100), growth=soak_says_leak))
    assert f.evidence["bytes_per_iteration"] == 4096.0 and f.evidence["probe"] == "heap"
    assert f.evidence["window"] == [50, 400] and f.sites == ["train.py:30"]
