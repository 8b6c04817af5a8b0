"""Referrer chains: from a root (a module global, a running frame's local) to the object kept alive."""

from __future__ import annotations

import sys
from typing import Any

from memcheck import backrefs
from tests.markers import marker_site


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


class _Thing:
    pass


class _Slotted:
    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


CACHE: dict[str, list[Any]] = {}


def _remember(key: str, value: Any) -> None:
    CACHE.setdefault(key, []).append(value)  # cache-append


def test_chain_from_a_module_global_through_a_dict_and_a_list() -> None:
    _remember("k", _Thing())
    try:
        chain = backrefs.find_chain(CACHE["k"][0])  # nothing in this frame holds the thing
        assert [type(o).__name__ for o in chain] == ["dict", "dict", "list", "_Thing"]
        assert chain[0] is vars(sys.modules[__name__])
        labels = [d["label"] for d in backrefs.describe_chain(chain)]
        assert labels == [f"module {__name__}", "global 'CACHE' -> dict", "key 'k' -> list", "[0] -> _Thing"]
        name, codes = backrefs.root_name(chain)
        assert name == "CACHE"
        assert backrefs.mutation_lines(codes, name) == [site("cache-append")]
    finally:
        CACHE.clear()


def test_chain_from_a_running_frames_local_through_a_slot() -> None:
    holder = [_Slotted(_Thing())]
    chain = backrefs.find_chain(holder[0].item)
    assert chain[0] is sys._getframe()
    assert [type(o).__name__ for o in chain[1:]] == ["list", "_Slotted", "_Thing"]
    labels = [d["label"] for d in backrefs.describe_chain(chain)]
    assert labels[0].startswith("frame of test_chain_from_a_running_frames_local_through_a_slot() at ")
    assert labels[1:] == [
        "local 'holder' of test_chain_from_a_running_frames_local_through_a_slot() -> list",
        "[0] -> _Slotted",
        ".item -> _Thing",
    ]
    assert backrefs.root_name(chain)[0] == "holder"


def _make_recorder() -> Any:
    kept: list[Any] = []

    def record(value: Any) -> None:
        kept.append(value)  # closure-append

    return record


def test_chain_through_a_closure_names_the_free_variable_and_its_append_line() -> None:
    recorder = _make_recorder()
    recorder(_Thing())
    chain = backrefs.find_chain(recorder.__closure__[0].cell_contents[0])
    assert [type(o).__name__ for o in chain] == ["frame", "function", "tuple", "cell", "list", "_Thing"]
    name, codes = backrefs.root_name(chain)
    assert name == "kept"
    assert backrefs.mutation_lines(codes, name) == [site("closure-append")]
    labels = [d["label"] for d in backrefs.describe_chain(chain)]
    test_name = "test_chain_through_a_closure_names_the_free_variable_and_its_append_line"
    assert labels[1] == f"local 'recorder' of {test_name}() -> function"
    assert labels[-2:] == ["cell contents -> list", "[0] -> _Thing"]


def test_no_chain_when_the_root_is_too_far() -> None:
    # (find_chain is called outside ``assert``: pytest's rewritten asserts keep subexpressions
    # in the frame's locals, which would be a root one hop away)
    nested: list[Any] = [[[[_Thing()]]]]
    too_far = backrefs.find_chain(nested[0][0][0][0], max_depth=2)
    found = backrefs.find_chain(nested[0][0][0][0])
    assert too_far == []
    assert [type(o).__name__ for o in found] == ["frame", "list", "list", "list", "list", "_Thing"]


def test_the_nearest_root_wins() -> None:
    cycle: list[Any] = [_Thing()]
    cycle.append(cycle)
    inner = cycle[0]
    del cycle  # the list now lives only in its own cycle
    chain = backrefs.find_chain(inner)
    assert [type(o).__name__ for o in chain] == ["frame", "_Thing"]  # ``inner`` itself is a local


def test_mutation_lines_finds_appends_and_item_assignments() -> None:
    def fill(store: dict, history: list, x: Any) -> None:
        history.append(x)  # fill-append
        store["last"] = x  # fill-setitem
        history.extend([x])  # fill-extend
        print(x)

    code = fill.__code__
    assert backrefs.mutation_lines([code], "history") == [site("fill-append"), site("fill-extend")]
    assert backrefs.mutation_lines([code], "store") == [site("fill-setitem")]
    assert backrefs.mutation_lines([code], "x") == []
