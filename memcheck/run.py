"""``Run``: everything one session saw, serialisable to JSON; every report renders from it alone.

The format is documented in docs/run-json.md; bump :data:`SCHEMA_VERSION` on
any incompatible change. :meth:`Run.from_json` refuses other versions with a
clear :class:`RunFormatError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcheck.findings import Finding, severity_rank

SCHEMA = "memcheck.run"
SCHEMA_VERSION = 1


class RunFormatError(ValueError):
    """A run JSON that is missing, corrupt, or of another schema version."""


@dataclass
class Run:
    """One session's record: findings, probe samples, ledger summaries, metadata."""

    name: str = "run"
    command: str = ""
    mode: str = "default"
    started_at: str = ""
    duration_s: float = 0.0
    iterations: int = 0
    stopped_early: bool = False
    stop_reason: str | None = None
    interrupted: bool = False
    error: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    samples: list[Any] = field(default_factory=list)  # dicts, or typed samples with ``to_dict()``
    top_owners: list[dict[str, Any]] = field(default_factory=list)
    sites: list[dict[str, Any]] = field(default_factory=list)
    ledger_summary: dict[str, Any] = field(default_factory=dict)
    growth: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    samples_path: str | None = None
    partial: bool = False  # rebuilt from what a killed run left (its samples file), not a finished run
    schema_version: int = SCHEMA_VERSION

    # -- verdict ------------------------------------------------------------
    def worst_severity(self) -> str | None:
        """The most severe finding's severity, or None when there are none."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=severity_rank)

    def failing(self, fail_on: str = "error") -> list[Finding]:
        """Findings at or above ``fail_on``."""
        return [f for f in self.findings if f.at_least(fail_on)]

    @property
    def verdict(self) -> str:
        """``clean``, ``warnings`` or ``problems`` (an error-level finding or a crash)."""
        worst = self.worst_severity()
        if self.error is not None or worst == "error":
            return "problems"
        if worst == "warning":
            return "warnings"
        return "clean"

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": self.schema_version,
            "name": self.name,
            "command": self.command,
            "mode": self.mode,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "iterations": self.iterations,
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
            "interrupted": self.interrupted,
            "error": self.error,
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
            "samples": [s if isinstance(s, dict) else s.to_dict() for s in self.samples],
            "top_owners": [r if isinstance(r, dict) else r.to_dict() for r in self.top_owners],
            "sites": [r if isinstance(r, dict) else r.to_dict() for r in self.sites],
            "ledger_summary": self.ledger_summary,
            "growth": self.growth,
            "metadata": self.metadata,
            "samples_path": self.samples_path,
            "partial": self.partial,
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int | None = 1) -> str:
        """The run as JSON text; also written to ``path`` when given (atomically).

        With ``indent``, one top-level field a line, each value compact: readable, and written by the
        C encoder (an indented dump goes through the pure-Python one, ~10x slower on a long run's samples).
        """
        data = self.to_dict()
        if indent is None:
            text = json.dumps(data, default=_jsonable)
        else:
            pad = " " * indent
            fields = (f"{pad}{json.dumps(k)}: {json.dumps(v, default=_jsonable)}" for k, v in data.items())
            text = "{\n" + ",\n".join(fields) + "\n}"
        if path is not None:
            from memcheck.report.files import write_text_atomic  # the one atomic writer

            write_text_atomic(Path(path), text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Any, source: str = "run JSON") -> Run:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise RunFormatError(f'{source} is not a memcheck run (no "schema": "{SCHEMA}" field)')
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunFormatError(
                f"{source} has schema_version {version!r}; this memcheck reads version {SCHEMA_VERSION}. "
                "Re-run the scenario with this memcheck, or render it with the memcheck that wrote it."
            )
        _check_fields(data, source)
        try:
            return cls(
                name=str(data.get("name", "run")),
                command=str(data.get("command") or ""),
                mode=str(data.get("mode", "default")),
                started_at=str(data.get("started_at") or ""),
                duration_s=float(data.get("duration_s") or 0.0),
                iterations=int(data.get("iterations") or 0),
                stopped_early=bool(data.get("stopped_early", False)),
                stop_reason=data.get("stop_reason"),
                interrupted=bool(data.get("interrupted", False)),
                error=data.get("error"),
                findings=[_finding(f, i, source) for i, f in enumerate(data.get("findings") or [])],
                samples=list(data.get("samples") or []),
                top_owners=list(data.get("top_owners") or []),
                sites=list(data.get("sites") or []),
                ledger_summary=dict(data.get("ledger_summary") or {}),
                growth=data.get("growth"),
                metadata=dict(data.get("metadata") or {}),
                samples_path=data.get("samples_path"),
                partial=bool(data.get("partial", False)),
            )
        except RunFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFormatError(f"{source} is damaged: {exc}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Run:
        """Read a run written by :meth:`to_json`; :class:`RunFormatError` on any problem."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunFormatError(f"{p}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFormatError(f"{p}: cannot read it ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunFormatError(
                f"{p} is not valid JSON (line {exc.lineno}, column {exc.colno}): corrupt or truncated"
            ) from None
        return cls.from_dict(data, source=str(p))


#: top-level fields a reader relies on, with the JSON types each may have (None: null)
_FIELD_TYPES: dict[str, tuple[type | None, ...]] = {
    "name": (str,),
    "command": (str, None),
    "mode": (str,),
    "started_at": (str, None),
    "duration_s": (int, float, None),
    "iterations": (int, None),
    "stopped_early": (bool,),
    "stop_reason": (str, None),
    "interrupted": (bool,),
    "error": (dict, None),
    "findings": (list,),
    "samples": (list,),
    "top_owners": (list,),
    "sites": (list,),
    "ledger_summary": (dict,),
    "growth": (dict, None),
    "metadata": (dict,),
    "samples_path": (str, None),
    "partial": (bool,),
}
_JSON_NAMES = {
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _check_fields(data: dict[str, Any], source: str) -> None:
    """Name the first damaged field: ``"samples" should be a list, not a string``."""
    for key, allowed in _FIELD_TYPES.items():
        if key not in data:
            continue
        value = data[key]
        types = tuple(type(None) if t is None else t for t in allowed)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            wanted = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in types))
            raise RunFormatError(
                f'{source} is damaged: field "{key}" should be {wanted}, not {_JSON_NAMES.get(type(value), "that")} '
                f"({json.dumps(value, default=str)[:40]}); re-run to get a fresh report"
            )
    for name in ("samples", "top_owners", "sites"):
        for i, item in enumerate(data.get(name) or []):
            if not isinstance(item, dict):
                raise RunFormatError(f'{source} is damaged: "{name}[{i}]" should be an object, not {item!r:.40}')


def _finding(data: Any, index: int, source: str) -> Finding:
    if not isinstance(data, dict):
        raise RunFormatError(f'{source} is damaged: "findings[{index}]" should be an object, not {data!r:.40}')
    try:
        return Finding.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        what = f"lacks the field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise RunFormatError(f'{source} is damaged: "findings[{index}]" {what}') from None


def _jsonable(value: Any) -> Any:
    """Typed records become their dicts; numbers and arrays from NumPy become plain JSON values."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
