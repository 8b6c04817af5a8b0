"""``Finding``: one problem a detector found, in words a user can act on; and the table of kinds.

Every finding kind is one row of :data:`KIND_TABLE`: its default severity, one
line of docs, and how its evidence is shown (:class:`Show` blocks that the
terminal and the HTML writer both draw). A new detector adds one row here and
nothing in the writers; a kind that has no row (a newer core, an old run JSON)
is drawn generically: its message, sites and evidence as key/value rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Show:
    """One block of a kind's evidence, drawn by every writer the same way.

    ``view`` names how: ``"chain"`` (a list of referrers, root first, drawn as
    links), ``"holder"`` (``{"name", "kind", "lines"}``: who keeps it and the
    lines that put objects there), ``"site_rates"`` (``[{"site",
    "bytes_per_iteration"}]``, fastest first) or ``"role_rates"`` (``{role:
    bytes_per_iteration}``). ``field`` is the
    evidence key it reads; fields a block shows are not repeated as rows.
    """

    view: str
    field: str
    title: str
    empty: str = ""  # said when the field is missing; nothing is shown when this is empty too


@dataclass(frozen=True)
class Kind:
    """A row of the kind table."""

    name: str
    severity: str
    doc: str
    shows: tuple[Show, ...] = ()
    chart_window: str | None = None  # evidence field ``[first, last]`` iterations the charts shade

    @property
    def drawn_fields(self) -> tuple[str, ...]:
        return tuple(s.field for s in self.shows)


_ROWS = (
    Kind("double_grad", "error",
         "One parameter storage has two live gradient buffers and only one is ever written."),
    Kind("dangling_ref", "error",
         "The graph refers to something already freed, which gives wrong gradients with no error."),
    Kind("aliased_buffers", "error",
         "Two live tensors share one buffer: a pool released it twice or handed it out in use."),
    Kind("inplace_saved", "error",
         "A tensor saved for backward was changed in place before backward read it."),
    Kind("retained_graph", "error",
         "A graph outlives its iteration; the chain shows who holds it, from a root.",
         (Show("chain", "chain", "Retention chain (root first)",
               "No chain of referrers was recorded: its root was not among the objects memcheck could see."),
          Show("holder", "holder", "Who holds it"))),
    Kind("growth", "error",
         "Memory grows with every iteration: bytes per iteration by allocation site and by role.",
         (Show("holder", "holder", "Who holds it"), Show("chain", "chain", "Retention chain (root first)"),
          Show("site_rates", "by_site", "Growth by allocation site"), Show("role_rates", "by_role", "Growth by role")),
         chart_window="window"),
    Kind("accumulated_hooks", "error",
         "A hook or callback is registered again at every iteration and never removed: each step runs them all.",
         (Show("holder", "holder", "Who holds them"), Show("chain", "chain", "Retention chain (root first)"))),
    Kind("ref_cycle", "warning",
         "A reference cycle keeps tensors alive until the cyclic garbage collector runs (an error where the "
         "program disables the collector: then nothing frees them)."),
    Kind("script_error", "error",
         "The watched code raised an error memcheck recognises (a released graph, an in-place change)."),
)  # fmt: skip

#: kind name -> its row; the one place a finding kind is declared
KIND_TABLE: dict[str, Kind] = {row.name: row for row in _ROWS}
KINDS = tuple(KIND_TABLE)


def kind_of(name: str) -> Kind:
    """The row of ``name``; a kind without a row gets a generic one (drawn as key/value rows)."""
    return KIND_TABLE.get(name) or Kind(name, "warning", "")


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for error; raises on anything else."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}: use one of {', '.join(SEVERITIES)}") from None


@dataclass
class Finding:
    """What is wrong, how bad, where (culprit site first), how many bytes, and the numbers behind it."""

    kind: str
    severity: str
    message: str
    owner: str | None = None
    sites: list[str] = field(default_factory=list)
    bytes: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        severity_rank(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            kind=str(data["kind"]),
            severity=str(data["severity"]),
            message=str(data["message"]),
            owner=data.get("owner"),
            sites=[str(s) for s in data.get("sites", [])],
            bytes=int(data.get("bytes", 0)),
            evidence=dict(data.get("evidence", {})),
        )

    def at_least(self, severity: str) -> bool:
        """True when this finding is as severe as ``severity`` or more."""
        return severity_rank(self.severity) >= severity_rank(severity)
