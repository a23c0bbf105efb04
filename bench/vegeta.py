"""Finding (or building once) the vegeta load generator, and running one attack.

vegeta (MIT, Go) is a separate process with its own cores' worth of scheduling,
so the gateway is measured as a server, not as half of one Python loop. The
binary never lives in the repository: it is looked up in ``$NF_VEGETA``,
``/tmp/nf-bench-bin`` and ``~/.cache/notifactor/bench-bin``, and otherwise
built once from the Go module proxy into the cache directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"
CACHE_DIR = Path.home() / ".cache" / "notifactor" / "bench-bin"
BUILD_TIMEOUT_S = 300


def find_vegeta(*, build: bool = True) -> tuple[Path | None, str]:
    """The vegeta binary and how it was found, or ``None`` and why not."""
    candidates = [
        Path(p) for p in (os.environ.get("NF_VEGETA"), "/tmp/nf-bench-bin/vegeta") if p
    ] + [CACHE_DIR / "vegeta"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate, f"found {candidate}"
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if not build or go is None:
        return None, "vegeta not found and Go is unavailable"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [go, "install", VEGETA_MODULE],
            env={**os.environ, "GOBIN": str(CACHE_DIR)},
            cwd=CACHE_DIR,
            check=True,
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except (subprocess.SubprocessError, OSError) as error:
        return None, f"building vegeta failed: {error}"
    built = CACHE_DIR / "vegeta"
    return (
        (built, f"built {VEGETA_MODULE} into {built}") if built.is_file() else (None, "no binary")
    )


def write_targets(
    path: Path, url: str | Sequence[str], headers: dict[str, str], body_file: Path
) -> None:
    """Targets in vegeta's HTTP format: the same request to each URL (vegeta takes them in turn)."""
    urls = [url] if isinstance(url, str) else list(url)
    lines: list[str] = []
    for each in urls:
        lines += [f"POST {each}", *(f"{k}: {v}" for k, v in headers.items()), f"@{body_file}", ""]
    path.write_text("\n".join(lines))


def attack_command(
    vegeta: Path, targets: Path, output: Path, *, workers: int, duration_s: float
) -> list[str]:
    """As fast as ``workers`` keep-alive connections allow, for ``duration_s``."""
    return [
        str(vegeta),
        "attack",
        "-format=http",
        f"-targets={targets}",
        "-rate=0",
        f"-workers={workers}",
        f"-max-workers={workers}",
        f"-duration={duration_s}s",
        "-timeout=10s",
        "-keepalive=true",
        f"-output={output}",
    ]


def report(vegeta: Path, output: Path) -> dict[str, Any]:
    """Requests, rate, success ratio, status codes and latencies (ms) of one attack."""
    raw = subprocess.run(
        [str(vegeta), "report", "-type=json", str(output)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    data = json.loads(raw)
    lat = data["latencies"]
    return {
        "requests": data["requests"],
        "seconds": data["duration"] / 1e9,
        "success_ratio": data["success"],
        "status_codes": data["status_codes"],
        "errors": data.get("errors") or [],
        "p50_ms": lat["50th"] / 1e6,
        "p90_ms": lat["90th"] / 1e6,
        "p99_ms": lat["99th"] / 1e6,
        "max_ms": lat["max"] / 1e6,
    }
