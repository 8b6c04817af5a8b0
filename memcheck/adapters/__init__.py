"""Engine adapters: each turns one engine's notifications into the Recorder's event contract.

``agcore`` listens on agcore's observer seam; :mod:`memcheck.foreign` is the
adapter for hand-written engines that declare their references themselves.
A third engine is one more module here (docs/events.md).
"""
