"""What the CLI tests share: the one line a refused command writes."""

from __future__ import annotations

import subprocess


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of ``result`` (no traceback anywhere)."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
