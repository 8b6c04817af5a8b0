"""Who holds memory: referrer chains from a root, the holder's name as a user reads it, and the lines that fill it."""

from __future__ import annotations

import functools
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import memcheck.session  # noqa: F401  (registers memcheck's own files as internal, as every session does)
from memcheck import holders
from memcheck.deepcheck import MAX_WINDOWS, Inspector
from memcheck.recorder import Recorder
from memcheck.records import Holder
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


def _labels(chain: list[Any]) -> list[str]:
    holder = holders.describe(chain)
    assert holder is not None
    return [h.label for h in holder.chain]


def test_chain_from_a_module_global_through_a_dict_and_a_list() -> None:
    _remember("k", _Thing())
    try:
        chain = holders.find_chain(CACHE["k"][0])  # nothing in this frame holds the thing
        assert [type(o).__name__ for o in chain] == ["dict", "dict", "list", "_Thing"]
        assert chain[0] is vars(sys.modules[__name__])
        assert _labels(chain) == [f"module {__name__}", "global 'CACHE' (dict)", "['k'] (list)", "[0] (_Thing)"]
        holder = holders.describe(chain)
        assert holder is not None
        assert (holder.name, holder.kind) == (f"global 'CACHE' in {__name__}", "global")
        assert holders.candidate_lines(holder) == [site("cache-append")]
    finally:
        CACHE.clear()


def test_chain_from_a_running_frames_local_through_a_slot() -> None:
    holder = [_Slotted(_Thing())]
    chain = holders.find_chain(holder[0].item)
    assert chain[0] is sys._getframe()
    assert [type(o).__name__ for o in chain[1:]] == ["list", "_Slotted", "_Thing"]
    labels = _labels(chain)
    name = "test_chain_from_a_running_frames_local_through_a_slot"
    assert labels[0] == f"{name}() in {__file__}"  # no line number: the chain stays the same as the frame runs
    assert labels[1:] == [f"local 'holder' of {name}() (list)", "[0] (_Slotted)", ".item (_Thing)"]
    described = holders.describe(chain)
    assert described is not None and (described.name, described.kind) == ("_Slotted.item", "attribute")


def _make_recorder() -> Any:
    kept: list[Any] = []

    def record(value: Any) -> None:
        kept.append(value)  # closure-append

    return record


def test_chain_through_a_closure_names_the_free_variable_and_its_append_line() -> None:
    recorder = _make_recorder()
    recorder(_Thing())
    holder, chain = holders.holder_of(recorder.__closure__[0].cell_contents[0])
    assert holder is not None and holder.kind == "closure"
    assert holder.name == "closure variable 'kept' of record() in _make_recorder()"
    assert [type(o).__name__ for o in chain][-2:] == ["list", "_Thing"]
    assert site("closure-append") in holders.candidate_lines(holder)  # every `kept.append` of user code


def test_a_deeply_nested_object_is_found_from_its_root() -> None:
    # (find_chain is called outside ``assert``: pytest's rewritten asserts keep subexpressions
    # in the frame's locals, which would be a root one hop away)
    nested: list[Any] = [[[[_Thing()]]]]
    found = holders.find_chain(nested[0][0][0][0])
    assert [type(o).__name__ for o in found] == ["frame", "list", "list", "list", "list", "_Thing"]
    assert _labels(found)[1] == "local 'nested' of test_a_deeply_nested_object_is_found_from_its_root() (list)"


def test_the_nearest_root_wins() -> None:
    cycle: list[Any] = [_Thing()]
    cycle.append(cycle)
    inner = cycle[0]
    del cycle  # the list now lives only in its own cycle
    chain = holders.find_chain(inner)
    assert [type(o).__name__ for o in chain] == ["frame", "_Thing"]  # ``inner`` itself is a local


# -- holder names as a user reads them ----------------------------------------------------


class Trainer:
    def __init__(self) -> None:
        self.curve: list[Any] = []

    def step(self, value: Any) -> None:
        self.curve.append(value)  # trainer-append


def test_an_object_attribute_is_named_class_dot_attribute() -> None:
    trainer = Trainer()
    for _ in range(3):
        trainer.step(_Thing())
    holder, chain = holders.holder_of(trainer.curve[-1])
    assert holder is not None and (holder.name, holder.kind) == ("Trainer.curve", "attribute")
    assert holder.chain[-1].label == "[2] (_Thing)"
    assert holders.candidate_lines(holder) == [site("trainer-append")]


class Registry:
    seen: list[Any] = []


def _register(x: Any) -> None:
    Registry.seen.append(x)  # class-append


def test_a_class_attribute_is_named_with_its_class() -> None:
    _register(_Thing())
    try:
        holder, _ = holders.holder_of(Registry.seen[0])
        assert holder is not None and (holder.name, holder.kind) == ("Registry.seen", "class_attribute")
        assert site("class-append") in holders.candidate_lines(holder)
    finally:
        Registry.seen.clear()


class Model:
    @functools.lru_cache(maxsize=128)  # noqa: B019 (the leak under test)
    def embed(self, key: int) -> list[_Thing]:
        return [_Thing()]


def test_an_lru_cache_is_named_with_the_function_it_wraps() -> None:
    model = Model()
    ref = weakref.ref(model.embed(3)[0])  # only the cache holds the result now
    try:
        holder, _ = holders.holder_of(ref())
        assert holder is not None and holder.kind == "lru_cache"
        assert holder.name == "lru_cache of Model.embed()"
    finally:
        Model.embed.cache_clear()


STORED: list[BaseException] = []


def _fails(big: list[_Thing]) -> None:
    raise ValueError("bad batch")


def _keep_error() -> _Thing:
    thing = _Thing()
    try:
        _fails([thing])
    except ValueError as err:
        STORED.append(err)  # keeps the traceback, and with it every frame's locals
    return thing


def test_a_stored_exception_is_named_as_such() -> None:
    thing = weakref.ref(_keep_error())  # only the stored traceback's frame holds it
    try:
        assert thing() is not None
        holder, _ = holders.holder_of(thing())
        assert holder is not None and holder.kind == "exception"
        assert holder.name in ("a stored ValueError", "a stored traceback")
        assert holder.chain[0].label == f"module {__name__}"
    finally:
        STORED.clear()


# -- candidate lines -------------------------------------------------------------------------


def test_candidate_lines_find_appends_item_assignments_and_attribute_stores() -> None:
    def fill(store: dict, history: list, x: Any, obj: Any) -> None:
        history.append(x)  # fill-append
        store["last"] = x  # fill-setitem
        history.extend([x])  # fill-extend
        obj.hook = lambda: obj  # fill-attr
        history = []
        print(x)

    code = [fill.__code__, *[c for c in fill.__code__.co_consts if hasattr(c, "co_code")]]

    def lines(name: str, kind: str = "local") -> list[str]:
        return holders.candidate_lines(Holder(name=name, kind=kind, chain=()), code)

    assert lines("local 'history' of fill()") == [site("fill-append"), site("fill-extend")]  # not the fresh []
    assert lines("local 'store' of fill()") == [site("fill-setitem")]
    assert lines("local 'x' of fill()") == []
    assert lines("?.hook", "attribute") == [site("fill-attr")]
    assert holders.variable_of(Holder(name="Trainer.curve", kind="attribute", chain=())) == ("attr", "curve")
    assert holders.variable_of(Holder(name="lru_cache of Model.embed()", kind="lru_cache", chain=())) == (
        "call",
        "embed",
    )


def test_user_files_exclude_the_library_and_memcheck_itself() -> None:
    assert holders.is_user_file(__file__)
    assert not holders.is_user_file(holders.__file__)
    assert not holders.is_user_file(functools.__file__)
    assert not holders.is_user_file("<frozen importlib._bootstrap>")


def test_holders_know_memchecks_own_files_without_a_session() -> None:
    code = "from memcheck import holders; print(holders.is_user_file(holders.__file__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert out.stdout.strip() == "False"


def test_a_holder_whose_lines_stay_unseen_gets_a_few_line_windows_only() -> None:
    inspector = Inspector(Recorder())
    never_changes = [1, 2, 3]
    opened = 0
    for _ in range(3 * MAX_WINDOWS):
        inspector._arm({"global 'cache' in m": lambda: len(never_changes)})
        if inspector.watch is not None:
            opened += 1
            inspector.rec.iteration = inspector.watch_closes_at
            assert inspector.tick()  # the window closes having seen no line change the holder
    assert opened == MAX_WINDOWS and "global 'cache' in m" not in inspector.executed


def test_a_scripts_class_stays_the_users_once_main_is_memchecks_again() -> None:
    # memcheck run restores sys.modules["__main__"] after the script: its classes must still read as user code
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(compile("class Handler:\n    def emit(self):\n        pass\n\nclass Bare:\n    pass\n", __file__, "exec"), ns)
    handler, bare = ns["Handler"], ns["Bare"]
    assert handler.__module__ == "__main__" and sys.modules["__main__"].__dict__ is not ns
    assert holders._user_class(handler)  # by where its method was written
    assert holders._user_class(bare)  # no method: a class of __main__ is the user's
    assert not holders._user_class(functools.partial)  # the standard library's
    assert not holders._user_class(holders.Holder)  # memcheck's own


def test_a_dict_key_that_is_a_tensor_is_named_not_printed() -> None:
    import agcore as ag
    from memcheck.holders import _short

    w = ag.randn(3, 3, requires_grad=True)
    w.name = "layers.0.weight"
    assert _short(w) == f"{type(w).__name__} 'layers.0.weight'"  # not its data
    assert _short(ag.randn(2)) == type(w).__name__
    assert _short("step") == "'step'" and _short(3) == "3"
    assert _short("x" * 60).endswith("...") and len(_short("x" * 60)) == 40


class _Box:
    pass


def test_unpinning_clears_the_locals_snapshots_of_user_frames_up_to_the_sessions_frame() -> None:
    if sys.version_info >= (3, 13):  # PEP 667: frames keep no snapshot of their locals any more
        return
    refs: dict[str, Any] = {}

    def outer() -> None:
        a = _Box()
        refs["outer"] = weakref.ref(a)
        locals()  # the frame keeps this snapshot, and with it the box, until its next read
        a = None  # noqa: F841  (the snapshot still holds the box)
        inner()

    def inner() -> None:
        b = _Box()
        refs["inner"] = weakref.ref(b)
        locals()
        b = None  # noqa: F841
        here = sys._getframe()
        holders.unpin_locals(up_to=(id(here), id(here.f_code)))  # as a session entered here would
        refs["after_walk_to_here"] = (refs["inner"]() is None, refs["outer"]() is None)
        holders.unpin_locals()  # the whole stack
        refs["after_whole_walk"] = refs["outer"]() is None

    outer()
    assert refs["after_walk_to_here"] == (True, False)  # its own frame cleared, the frame above left alone
    assert refs["after_whole_walk"] is True


def test_which_files_are_the_users_is_asked_again_once_a_package_registers_as_internal(tmp_path: Path) -> None:
    from agcore import sites

    path = str(tmp_path / "vendored" / "lib.py")
    assert holders.is_user_file(path)
    before = sites.INTERNAL_PREFIXES
    try:
        sites.register_internal(str(tmp_path / "vendored"))
        assert not holders.is_user_file(path)
    finally:
        sites.INTERNAL_PREFIXES = before
    assert holders.is_user_file(path)


HANDLES: list[Any] = []


def _epoch_hook(grad: Any) -> None:
    return None


def test_a_hook_lists_pace_is_read_over_every_scan_since_it_was_first_seen_growing() -> None:
    # hooks registered at each epoch's start, six at a time: two scans an iteration apart across an epoch's
    # start read as six entries an iteration; the pace since the first sighting is what the list keeps
    inspector = Inspector(Recorder())
    HANDLES.clear()
    paces = {}
    try:
        for iteration, length in ((10, 12), (20, 18), (26, 24), (40, 30), (41, 36)):
            HANDLES.extend([_epoch_hook] * (length - len(HANDLES)))
            inspector.rec.iteration = iteration
            _, grown = inspector.look(containers=True)
            paces.update((iteration, c.items_per_iteration) for c in grown if c.callable_name and c.items == length)
    finally:
        inspector.close()  # the line window a scan opens to see which line fills the list traces every call
        HANDLES.clear()
    assert paces[20] == 0.6  # first seen growing: the pace since the scan before
    assert paces[41] == (36 - 18) / (41 - 20), paces  # not 6.0, the one iteration since the last scan
