"""The benchmark's one exception and how a caught exception is written into a row."""

from __future__ import annotations

__all__ = ["EvalError", "error_text"]


class EvalError(Exception):
    """Bad input to the benchmark (missing folder, unknown codec, dataset not prepared): one clear line."""


def error_text(e: BaseException, stage: str | None = None) -> str:
    """``"[stage: ]Type: first line of the message"`` (the message left out when empty)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (f"{stage}: " if stage else "") + type(e).__name__ + (f": {msg}" if msg else "")
