"""File-system safety: atomic writes, folder locks, all-or-nothing output folders, versions for provenance."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def package_versions(packages=("dicsbi", "numpy", "scipy", "numba")) -> dict:
    """Python and package versions for the provenance of an output (None for a package not installed)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


_UMASK = os.umask(0)


os.umask(_UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


LOCK_NAME = ".dicsbi.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """``out/.dicsbi.lock`` holding the process id, for as long as the ``with`` block runs.

    A second dicsbi run on the same folder is refused while the first is alive; a stale lock left by a killed
    run is taken over.
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.lock = self.out / LOCK_NAME

    def __enter__(self) -> Path:
        from ..errors import DicsbiError

        self.out.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
                break
            except FileExistsError:
                try:
                    other = int(self.lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    other = 0
                if other and other != os.getpid() and _pid_alive(other):
                    raise DicsbiError(f"{self.out}: another dicsbi run (process {other}) is writing this folder; "
                                      f"wait for it or choose another --out (remove {self.lock} if that process "
                                      "is not dicsbi)") from None
                self.lock.unlink(missing_ok=True)  # stale: its run was killed
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return self.out

    def __exit__(self, *exc) -> None:
        self.lock.unlink(missing_ok=True)


class OutputFolder(FolderLock):
    """Write a command's whole output as one unit: staged, locked, published at the end.

    ``with OutputFolder(out) as stage:`` takes the :class:`FolderLock` on ``out`` and gives a staging folder
    ``out/.partial-<pid>/`` to write into.  When the block ends normally every entry of the stage is moved into
    ``out`` (files by atomic rename, folders replaced whole) and the stage is removed; when it raises (or the
    process is killed) ``out`` keeps what it had before: the new outputs exist only under a temporary name, which
    the next run removes.
    """

    def __init__(self, out: str | os.PathLike):
        super().__init__(out)
        self.stage = self.out / f".partial-{os.getpid()}"

    def __enter__(self) -> Path:
        super().__enter__()
        for old in self.out.glob(".partial-*"):  # left by killed runs
            _remove(old)
        self.stage.mkdir()
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for entry in sorted(self.stage.iterdir()):
                    dest = self.out / entry.name
                    if entry.is_dir() and dest.exists():
                        old = self.out / f".partial-{os.getpid()}-old-{entry.name}"
                        os.replace(dest, old)
                        os.replace(entry, dest)
                        _remove(old)
                    else:
                        os.replace(entry, dest)
        finally:
            _remove(self.stage)
            super().__exit__(exc_type, exc, tb)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
