"""``Finding``: one problem a detector found, in words a user can act on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")

KINDS = (
    "double_grad",
    "dangling_ref",
    "aliased_buffers",
    "inplace_saved",
    "retained_graph",
    "growth",
    "ref_cycle",
    "script_error",
)


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
