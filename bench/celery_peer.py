"""The Celery peer of the dispatch bench: the same durable write, done by a Celery worker.

Celery lives in its own venv under /tmp (``pip install "celery[redis]>=5,<6"``,
created on first use), never in the project's. The bench generates a small
``tasks.py`` into a temporary directory: one task that writes the notification
row to SQLite (the same table as the SQLite store; a stored notification with
no status row reads as ``pending``, as the dispatcher writes it), with ``autoretry_for`` and
exponential backoff. ``N`` tasks are queued first on the bench's Redis, then
``celery -A tasks worker --pool=prefork --concurrency=2`` is started and the
drain is timed from the first stored row to the last, like the dispatcher's
drain of pre-filled streams. Everything is bounded in time; if the venv cannot
be made, the caller records a note instead of a figure.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infra.local.processes import stop_process

VENV = Path("/tmp/nf-celery-venv")
REQUIREMENT = "celery[redis]>=5,<6"

TASKS = '''
import json, os, sqlite3
from celery import Celery

app = Celery("tasks", broker=os.environ["NF_BROKER"])
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=64,
    worker_hijack_root_logger=False,
)
_db = None

NOTIFICATION = """INSERT INTO notifications
 (tenant_id, id, user_id, channel, content, priority, metadata, created_us, expires_us)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, id) DO NOTHING"""


def db():
    global _db
    if _db is None:
        _db = sqlite3.connect(os.environ["NF_DB"], timeout=30, isolation_level=None)
        _db.execute("PRAGMA journal_mode=WAL")
        _db.execute("PRAGMA synchronous=NORMAL")
    return _db


@app.task(autoretry_for=(sqlite3.OperationalError,), retry_backoff=0.1, retry_backoff_max=5,
          retry_jitter=True, max_retries=8)
def store(envelope):
    e = json.loads(envelope)
    created = e["created_us"]
    expires = created + 30 * 86_400_000_000
    d = db()
    d.execute("BEGIN IMMEDIATE")
    try:
        d.execute(NOTIFICATION, (e["tenant_id"], e["id"], e["user_id"], e["channel"], e["content"],
                                 e["priority"], json.dumps(e["metadata"]), created, expires))
        d.execute("COMMIT")
    except BaseException:
        d.execute("ROLLBACK")
        raise
'''

PRODUCE = """
import json, sys, time, uuid
from tasks import app, store
n = int(sys.argv[1])
started = time.perf_counter()
with app.producer_or_acquire() as producer:
    for i in range(n):
        envelope = json.dumps({"tenant_id": "bench", "id": str(uuid.uuid4()),
            "user_id": f"user-{i % 1000}", "channel": "alerts", "content": "Deployment completed",
            "priority": "normal", "metadata": {"i": i}, "created_us": int(time.time() * 1e6)})
        store.apply_async((envelope,), producer=producer)
print(n / (time.perf_counter() - started))
"""


def ensure_venv() -> tuple[Path | None, str]:
    """The venv's ``bin`` directory with Celery in it, or None and why."""
    celery = VENV / "bin" / "celery"
    if celery.exists():
        return VENV / "bin", f"reused {VENV}"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", REQUIREMENT],
            check=True,
            timeout=300,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as error:
        return None, f"could not create the Celery venv ({type(error).__name__}: {error})"
    if not celery.exists():
        return None, "pip finished but no celery script"
    return VENV / "bin", f"created {VENV} with {REQUIREMENT}"


def _count(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as db:
        return int(db.execute("SELECT count(*) FROM notifications").fetchone()[0])


def run_celery_peer(broker_url: str, db_path: Path, workdir: Path, n: int) -> dict[str, Any]:
    """Queue ``n`` tasks, start the worker, time the drain. ``db_path`` already has the schema."""
    bin_dir, how = ensure_venv()
    if bin_dir is None:
        return {"skipped": True, "note": how}
    (workdir / "tasks.py").write_text(TASKS)
    (workdir / "produce.py").write_text(PRODUCE)
    env = {**os.environ, "NF_BROKER": broker_url, "NF_DB": str(db_path), "PYTHONPATH": str(workdir)}
    enqueue = subprocess.run(
        [str(bin_dir / "python"), "produce.py", str(n)],
        cwd=workdir, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    log = (workdir / "worker.log").open("ab")
    worker = subprocess.Popen(
        [str(bin_dir / "celery"), "-A", "tasks", "worker", "--pool=prefork", "--concurrency=2",
         "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + max(120.0, n / 100)
        first_at: float | None = None
        first_count = 0
        done = 0
        while time.monotonic() < deadline:
            done = _count(db_path)
            if done and first_at is None:
                first_at, first_count = time.perf_counter(), done
            if done >= n:
                break
            time.sleep(0.05)
        finished_at = time.perf_counter()
    finally:
        stop_process(worker, grace=20)
        log.close()
    if first_at is None or done < n:
        return {"skipped": False, "completed": done, "note": f"timed out ({how})"}
    drained = max(1, n - first_count)
    return {
        "skipped": False,
        "venv": how,
        "tasks": n,
        "enqueue_per_s": round(float(enqueue.stdout.decode().strip() or 0)),
        "drain_per_s": round(drained / (finished_at - first_at)),
        "worker": "celery 5 prefork, concurrency 2, Redis broker, task_acks_late off, prefetch 64",
    }
