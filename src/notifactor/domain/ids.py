"""Time-ordered notification ids: UUIDv7 (RFC 9562), monotonic within a process.

Layout of the 128 bits: 48-bit Unix milliseconds, version ``7``, a 12-bit
sequence (``rand_a``), variant ``10``, 62 random bits (``rand_b``). The
sequence starts at a random value below 2048 each new millisecond and counts
up within it (RFC 9562 §6.2, method 1), so ids generated in one process sort
in generation order even when many share a millisecond. If the sequence runs
out, or the wall clock steps back, the generator borrows the next millisecond
instead of going backwards.

The canonical text is lowercase hex in 8-4-4-4-12 groups: URL-safe, and its
string order equals its time order.
"""

from __future__ import annotations

import os
import re
import threading
import time

import attrs

_SEQ_BITS = 12
_SEQ_MAX = (1 << _SEQ_BITS) - 1
_SEQ_START_MAX = 1 << (_SEQ_BITS - 1)
_RAND_B_BITS = 62
_MAX_MS = (1 << 48) - 1

UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def format_uuid(value: int) -> str:
    """The canonical 8-4-4-4-12 lowercase hex text of a 128-bit value."""
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def compose_uuid7(unix_ms: int, seq: int, rand_b: int) -> int:
    """The 128-bit UUIDv7 made of its three variable parts."""
    if not 0 <= unix_ms <= _MAX_MS:
        raise ValueError(f"unix_ms out of range: {unix_ms}")
    return (
        (unix_ms << 80)
        | (0x7 << 76)
        | ((seq & _SEQ_MAX) << 64)
        | (0b10 << 62)
        | (rand_b & ((1 << _RAND_B_BITS) - 1))
    )


def is_notification_id(text: str) -> bool:
    """True when ``text`` is a canonical UUIDv7 (what the gateway issues)."""
    return UUID_TEXT.fullmatch(text) is not None


def uuid7_unix_ms(text: str) -> int:
    """The millisecond timestamp embedded in a canonical UUIDv7."""
    return int(text[:8] + text[9:13], 16)


@attrs.define
class UuidV7Generator:
    """Makes strictly increasing UUIDv7 values; safe to share between threads.

    Attributes:
        last_ms: the millisecond of the last id issued.
        last_seq: the sequence of the last id issued.
    """

    last_ms: int = -1
    last_seq: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def next_at(self, now_ms: int, *, entropy: bytes | None = None) -> str:
        """The next id for a wall clock reading of ``now_ms``.

        Args:
            now_ms: Unix time in milliseconds.
            entropy: 10 random bytes (tests pass their own); ``os.urandom`` otherwise.
        """
        raw = entropy if entropy is not None else os.urandom(10)
        rand = int.from_bytes(raw[:10].ljust(10, b"\0"), "big")
        rand_b = rand & ((1 << _RAND_B_BITS) - 1)
        start_seq = (rand >> _RAND_B_BITS) % _SEQ_START_MAX
        with self._lock:
            if now_ms > self.last_ms:
                ms, seq = now_ms, start_seq
            elif self.last_seq < _SEQ_MAX:
                ms, seq = self.last_ms, self.last_seq + 1
            else:
                ms, seq = self.last_ms + 1, start_seq
            self.last_ms, self.last_seq = ms, seq
        return format_uuid(compose_uuid7(ms, seq, rand_b))

    def next(self) -> str:
        """The next id at the current wall clock time."""
        return self.next_at(time.time_ns() // 1_000_000)


_DEFAULT = UuidV7Generator()


def new_notification_id() -> str:
    """A fresh id from the process-wide generator (monotonic in this process)."""
    return _DEFAULT.next()
