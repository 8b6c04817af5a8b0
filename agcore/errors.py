"""Errors agcore raises; each message says what happened, where, and what to do."""


class AgcoreError(RuntimeError):
    """Base class of agcore's own errors."""


class GraphReleasedError(AgcoreError):
    """Backward reached a node whose saved tensors were already released."""


class InplaceModifiedError(AgcoreError):
    """A tensor saved for backward was modified in place afterwards."""


class LeafInplaceError(AgcoreError):
    """An in-place op on a leaf that requires grad, outside ``no_grad``."""
