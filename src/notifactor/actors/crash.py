"""Crash reasons: what is kept about a failure for logs and introspection."""

from __future__ import annotations

import time
import traceback

import attrs


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def summarize_exception(exc: BaseException) -> str:
    """``"ValueError: boom"``; for a group, its first leaf and how many more."""
    leaves = _leaves(exc)
    first = leaves[0]
    text = f"{type(first).__name__}: {first}"
    if len(leaves) > 1:
        text += f" (+{len(leaves) - 1} more)"
    return text


@attrs.frozen(kw_only=True)
class CrashReason:
    """Why a child stopped abnormally.

    Attributes:
        child_id: the child that crashed.
        exc_type: qualified name of the exception type (of the only leaf when
            the error came wrapped in a one-exception group).
        message: ``str()`` of that exception, or a summary for several.
        traceback: the formatted traceback, for logs and ``notifactor tree -v``.
        at: time of the crash on the Trio clock (for restart windows).
        wall_time: time of the crash as a Unix timestamp (for humans).
        exception: the exception itself, to chain from when escalating.
    """

    child_id: str
    exc_type: str
    message: str
    traceback: str
    at: float
    wall_time: float
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def from_exception(cls, child_id: str, exc: BaseException, *, at: float) -> CrashReason:
        """Describe ``exc``; a group holding a single error is described by that error."""
        leaves = _leaves(exc)
        subject = leaves[0] if len(leaves) == 1 else exc
        message = str(subject) if len(leaves) == 1 else summarize_exception(exc)
        return cls(
            child_id=child_id,
            exc_type=f"{type(subject).__module__}.{type(subject).__qualname__}",
            message=message,
            traceback="".join(traceback.format_exception(subject)),
            at=at,
            wall_time=time.time(),
            exception=subject,
        )

    @classmethod
    def without_exception(cls, child_id: str, what: str, *, at: float) -> CrashReason:
        """A failure with no exception (e.g. a child returned before ``started()``)."""
        return cls(
            child_id=child_id,
            exc_type="",
            message=what,
            traceback="",
            at=at,
            wall_time=time.time(),
        )

    def summary(self) -> str:
        """One line for logs: ``ValueError: boom``."""
        short = self.exc_type.rsplit(".", 1)[-1]
        return f"{short}: {self.message}" if short else self.message
