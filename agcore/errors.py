"""Errors agcore raises; each message says what happened, where, and what to do.

The graph errors also carry what their message says as attributes, so a caller that
catches one (a tool, a test) need not parse the text.
"""

from __future__ import annotations


class AgcoreError(RuntimeError):
    """Base class of agcore's own errors."""


class GraphReleasedError(AgcoreError):
    """Backward reached a node whose saved tensors were already released."""

    def __init__(self, message: str, node: str = "", created_at: str = "", released_at: str = "") -> None:
        super().__init__(message)
        self.node = node  # the node's name ("MulBackward")
        self.created_at = created_at  # "file:line" of the op that made it
        self.released_at = released_at  # "file:line" of the backward that released its saved tensors


class InplaceModifiedError(AgcoreError):
    """A tensor saved for backward was modified in place afterwards."""

    def __init__(
        self, message: str, node: str = "", tensor: str = "", saved_at: str = "", modified_at: str = "", op: str = ""
    ) -> None:
        super().__init__(message)
        self.node = node  # the node that saved it
        self.tensor = tensor  # the saved tensor's name, "" when it has none
        self.saved_at = saved_at  # "file:line" of the op that saved it
        self.modified_at = modified_at  # "file:line" of the in-place op
        self.op = op  # the in-place op ("mul_")


class LeafInplaceError(AgcoreError):
    """An in-place op on a leaf that requires grad, outside ``no_grad``."""
