"""A real single-node Cassandra 5.0 for tests and developers, without Docker.

The jars come from Maven Central (``cassandra-all``, pinned) into a cache
directory outside the repo; the node runs as a plain JVM child with a
generated ``cassandra.yaml``, free ports and a throwaway data directory.

Usage::

    python -m infra.local.cassandra_server fetch   # resolve the jars only (make test)
    python -m infra.local.cassandra_server start   # run a node until Ctrl-C

The JVM flags are the minimum that starts 5.0 on JDK 17 plus measured test
speed-ups; see shared/notes/cassandra.md for why each one is there.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import attrs

from infra.local.processes import (
    LOCALHOST,
    pick_free_ports,
    pid_alive,
    port_is_free,
    start_tied_process,
    stop_process,
    tail,
)

CASSANDRA_VERSION = "5.0.9"
MIN_JAVA_MAJOR = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
PROJECT_DIR = Path(__file__).resolve().parent / "cassandra"
COMPLETE_MARKER = ".complete"
DEFAULT_STARTUP_TIMEOUT = 120.0
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 60

JVM_FLAGS = (
    # Without these three, startup dies within seconds on JDK 17.
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "-Xms512M",
    "-Xmx512M",
    # Otherwise stdout/stderr close after start and the JVM detaches.
    "-Dcassandra-foreground=yes",
    # Test-only: skips a ~1 s memtable overhead estimation loop.
    "-Dcassandra.memtable.row_overhead_size=180",
    # Test-only: SIGTERM-to-exit drops by about 2 s.
    "-Dcassandra.shutdown_announce_in_ms=0",
)


@attrs.frozen
class CassandraContact:
    """Where a client reaches the node's native protocol."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class CassandraLaunchError(RuntimeError):
    """The jars, the JDK or the node itself is not usable; the message says which."""


def cache_dir() -> Path:
    """Directory for this version's jars and Maven repo, outside the repo.

    ``$NOTIFACTOR_CACHE_DIR`` replaces ``~/.cache/notifactor`` so CI can point
    it at a cached volume.
    """
    root = os.environ.get("NOTIFACTOR_CACHE_DIR") or Path.home() / ".cache" / "notifactor"
    return Path(root) / f"cassandra-{CASSANDRA_VERSION}"


def lib_dir_is_complete(lib_dir: Path) -> bool:
    """Tell whether a previous fetch finished: the marker lists every jar it copied."""
    marker = lib_dir / COMPLETE_MARKER
    if not marker.is_file():
        return False
    names = marker.read_text().split()
    return bool(names) and all((lib_dir / name).is_file() for name in names)


def fetch_jars(cache: Path | None = None) -> Path:
    """Resolve ``cassandra-all`` and its runtime dependencies into ``<cache>/lib``.

    Maven is skipped entirely when the lib dir is complete, so later runs work
    offline and take milliseconds. Otherwise the jars are copied into a
    temporary directory that replaces ``lib`` only once Maven succeeded; an
    interrupted download never looks complete. A file lock serialises
    concurrent fetches (two terminals, CI shards on a shared cache).

    Returns:
        The lib directory, to be used as ``-cp 'lib/*'``.

    Raises:
        CassandraLaunchError: mvn is missing or failed.
    """
    cache = cache or cache_dir()
    lib_dir = cache / "lib"
    if lib_dir_is_complete(lib_dir):
        return lib_dir
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".fetch.lock"):
        if lib_dir_is_complete(lib_dir):
            return lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise CassandraLaunchError(
                "mvn not found on PATH; install Maven (apt-get install maven) to fetch "
                f"Cassandra {CASSANDRA_VERSION}"
            )
        for stale in cache.glob("lib.*"):  # staging dirs of interrupted fetches
            shutil.rmtree(stale, ignore_errors=True)
        project = cache / "project"
        project.mkdir(exist_ok=True)
        shutil.copy2(PROJECT_DIR / "pom.xml", project / "pom.xml")
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=cache))
        command = [
            mvn,
            "-B",
            "-q",
            f"-Dmaven.repo.local={cache / 'm2'}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise CassandraLaunchError(f"mvn failed with status {result.returncode}:\n{output}")
        jars = sorted(path.name for path in staging.glob("*.jar"))
        if not any(name.startswith("cassandra-all-") for name in jars):
            shutil.rmtree(staging, ignore_errors=True)
            raise CassandraLaunchError(f"mvn succeeded but copied no cassandra-all jar: {jars}")
        (staging / COMPLETE_MARKER).write_text("\n".join(jars) + "\n")
        shutil.rmtree(lib_dir, ignore_errors=True)
        staging.rename(lib_dir)
        return lib_dir


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def java_executable() -> Path:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on PATH.

    Raises:
        CassandraLaunchError: no java, or one older than 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    java: str | None
    if java_home:
        java = str(Path(java_home) / "bin" / "java")
        if not os.access(java, os.X_OK):
            raise CassandraLaunchError(f"JAVA_HOME={java_home} has no executable bin/java")
    else:
        java = shutil.which("java")
        if java is None:
            raise CassandraLaunchError(
                "java not found; install JDK 17 (apt-get install openjdk-17-jre-headless) "
                "or set JAVA_HOME"
            )
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, timeout=30
    )
    output = result.stderr + result.stdout
    major = parse_java_major(output)
    if major is None or major < MIN_JAVA_MAJOR:
        first_line = output.strip().splitlines()[0] if output.strip() else "nothing"
        raise CassandraLaunchError(
            f"{java} -version reports {first_line!r}; Cassandra "
            f"{CASSANDRA_VERSION} here needs JDK {MIN_JAVA_MAJOR}+ (set JAVA_HOME)"
        )
    return Path(java)


def parse_java_major(version_output: str) -> int | None:
    """Extract the major version from ``java -version`` output (``1.8`` means 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def render_cassandra_yaml(*, storage_port: int, native_port: int) -> str:
    """The smallest cassandra.yaml a 5.0 single node accepts, on the given ports.

    Data directories are not here: ``-Dcassandra.storagedir`` places them all.
    ``auto_snapshot: false`` keeps TRUNCATE/DROP in tests from leaving
    snapshots behind. ``commitlog_sync: batch``: a write is acknowledged only
    once its commit log entry is synced, so what the node acknowledged
    survives a ``kill -9`` of it (SPEC §6). With the usual ``periodic`` sync a
    single node loses the writes it acknowledged in the moments before the
    kill. Unknown keys are fatal to Cassandra, so add keys with care.
    """
    return f"""\
cluster_name: notifactor-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: {LOCALHOST}
rpc_address: {LOCALHOST}
storage_port: {storage_port}
native_transport_port: {native_port}
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{LOCALHOST}:{storage_port}"
commitlog_sync: batch
auto_snapshot: false
"""


def daemon_command(*, java: Path, lib_dir: Path, workdir: Path, setpriv: str | None) -> list[str]:
    """The full command line that starts ``CassandraDaemon`` for ``workdir``.

    ``setpriv --bounding-set -ipc_lock`` stops a root JVM from mlock-ing its
    whole heap (0.3-1 GB extra RSS, seconds of startup).
    """
    prefix = [setpriv, "--bounding-set", "-ipc_lock"] if setpriv else []
    return [
        *prefix,
        str(java),
        *JVM_FLAGS,
        f"-Dcassandra.config={(workdir / 'cassandra.yaml').as_uri()}",
        f"-Dcassandra.storagedir={workdir / 'data'}",
        f"-Dcassandra.logdir={workdir / 'logs'}",
        f"-Dlogback.configurationFile={PROJECT_DIR / 'logback.xml'}",
        f"-Dcassandra.triggers_dir={workdir / 'triggers'}",
        # An exec-able tmpdir, or netty loses epoll and lz4 its native code.
        f"-Djava.io.tmpdir={workdir / 'tmp'}",
        "-cp",
        f"{lib_dir}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


class LocalCassandra:
    """One Cassandra node in a temporary directory, tied to this process.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The node
    is started with a parent-death signal, so even a SIGKILLed test run does
    not leave a JVM behind.
    """

    def __init__(self, *, lib_dir: Path, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        self.lib_dir = lib_dir
        self.startup_timeout = startup_timeout
        self.workdir: Path | None = None
        self.contact: CassandraContact | None = None
        self.release_version: str | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> CassandraContact:
        """Launch the node and return once a driver session can query it.

        Raises:
            CassandraLaunchError: ports taken, JVM exited, or no session within
                ``startup_timeout``; the log tail is in the message and on stderr.
        """
        java = java_executable()
        storage_port, native_port = pick_free_ports(2)
        for port in (storage_port, native_port):
            if not port_is_free(port):
                raise CassandraLaunchError(f"port {port} was taken before Cassandra started")
        workdir = Path(tempfile.mkdtemp(prefix="nf-cassandra-", dir="/tmp"))
        self.workdir = workdir
        for sub in ("data", "logs", "triggers", "tmp"):
            (workdir / sub).mkdir()
        (workdir / "cassandra.yaml").write_text(
            render_cassandra_yaml(storage_port=storage_port, native_port=native_port)
        )
        command = daemon_command(
            java=java, lib_dir=self.lib_dir, workdir=workdir, setpriv=shutil.which("setpriv")
        )
        started_at = time.monotonic()
        self._process = start_tied_process(command, log_path=workdir / "logs" / "stdout.log")
        contact = CassandraContact(LOCALHOST, native_port)
        try:
            self.release_version = self._wait_for_session(contact, started_at)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started_at
        self.contact = contact
        return contact

    def _wait_for_session(self, contact: CassandraContact, started_at: float) -> str:
        """Poll until our own PID serves a driver session; return its release_version.

        A port probe alone could reach another node that grabbed the port, so
        every round also checks that our JVM is still alive.
        """
        assert self._process is not None
        deadline = started_at + self.startup_timeout
        while time.monotonic() < deadline:
            if not pid_alive(self._process):
                self._fail(f"Cassandra exited with status {self._process.returncode}")
            if _accepts_tcp(contact):
                try:
                    return query_release_version(contact)
                except Exception:  # not ready yet: the driver's errors vary by phase
                    pass
            time.sleep(0.25)
        self._fail(f"no driver session within {self.startup_timeout:.0f} s")
        raise AssertionError("unreachable")

    def _fail(self, reason: str) -> None:
        assert self.workdir is not None
        logs = self.workdir / "logs"
        message = (
            f"{reason}\n--- last {LOG_TAIL_LINES} lines of {logs / 'system.log'} ---\n"
            f"{tail(logs / 'system.log', LOG_TAIL_LINES)}\n"
            f"--- {logs / 'stdout.log'} ---\n{tail(logs / 'stdout.log', 20)}"
        )
        print(message, file=sys.stderr)
        raise CassandraLaunchError(message)

    def kill_and_restart(self) -> None:
        """SIGKILL the node, then start it again on the same data and ports (a crash, recovered).

        Raises:
            CassandraLaunchError: as :meth:`start`.
        """
        if self._process is None or self.workdir is None or self.contact is None:
            raise CassandraLaunchError("the node is not running")
        self._process.kill()
        self._process.wait()
        command = daemon_command(
            java=java_executable(),
            lib_dir=self.lib_dir,
            workdir=self.workdir,
            setpriv=shutil.which("setpriv"),
        )
        started_at = time.monotonic()
        self._process = start_tied_process(
            command, log_path=self.workdir / "logs" / "stdout-restarted.log"
        )
        self._wait_for_session(self.contact, started_at)

    def stop(self) -> None:
        """SIGTERM the node, wait for it (bounded, then SIGKILL), reap it, remove its files."""
        if self._process is not None:
            stop_process(self._process, grace=STOP_GRACE_SECONDS)
            self._process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> CassandraContact:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts_tcp(contact: CassandraContact) -> bool:
    try:
        with socket.create_connection((contact.host, contact.port), timeout=1.0):
            return True
    except OSError:
        return False


def query_release_version(contact: CassandraContact) -> str:
    """Connect a throwaway driver session and read ``system.local.release_version``.

    Doubles as the readiness check: it proves the native protocol, the schema
    and CQL all work, not merely that a port is open.
    """
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=10.0)
    cluster = Cluster(
        contact_points=[(contact.host, contact.port)],
        port=contact.port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=5.0,
        control_connection_timeout=5.0,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)
    finally:
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``fetch`` resolves the jars, ``start`` runs a node until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m infra.local.cassandra_server")
    parser.add_argument("command", choices=["fetch", "start"])
    args = parser.parse_args(argv)
    try:
        began = time.monotonic()
        lib_dir = fetch_jars()
        print(
            f"cassandra {CASSANDRA_VERSION} jars ready in {lib_dir} "
            f"({time.monotonic() - began:.1f} s)",
            flush=True,
        )
        if args.command == "start":
            _serve_until_interrupted(lib_dir)
    except CassandraLaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _serve_until_interrupted(lib_dir: Path) -> None:
    # SIGTERM (e.g. from a process manager) stops the node as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = LocalCassandra(lib_dir=lib_dir)
    try:
        contact = node.start()
        print(
            f"Cassandra {node.release_version} ready at {contact} "
            f"(started in {node.startup_seconds:.1f} s, data in {node.workdir}); "
            f"NOTIFACTOR_TEST_CASSANDRA={contact}; Ctrl-C stops it",
            flush=True,
        )
        signal.pause()
    except KeyboardInterrupt:
        print("stopping Cassandra", flush=True)
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
