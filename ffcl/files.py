"""Writing ffcl's own files: whole or not at all, and a full disk as one line; run-directory locks.

A run directory is locked (``fcntl.flock`` on its ``.ffcl.lock``) by the process that runs it, so
two processes never run, resume or clear the same run at once, and a live run is recognised by its
lock: the kernel releases it when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["WriteError", "atomic_path", "LOCK_FILE", "lock_run_dir", "inherited_lock", "refuse_link", "LinkError"]

LOCK_FILE = ".ffcl.lock"  # in every run directory a process has locked; empty, never deleted while in use
LOCK_FD_ENV = "FFCL_LOCK_FD"  # a launcher (ffcl compare) that holds a run's lock hands its descriptor down by this variable
LAUNCHER_LOCKED = "launcher"  # ... or, when it cannot (a Ray task), says that it holds the lock itself


class WriteError(RuntimeError):
    """A file could not be written (full disk, permissions); the previous version is intact."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A new temporary path beside ``path`` to write to; it takes ``path``'s name only once the
    block finishes, so a reader never sees half a file. The temporary file is created afresh
    (never an existing file or link), so if writing fails (a full disk raises OSError, or
    RuntimeError from torch.save) the file removed is one ffcl made; ``path`` keeps its previous
    content, and :class:`WriteError` says so in one line."""
    path = Path(path)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        kept = "its previous version is kept" if path.exists() else "there was no earlier version"
        why = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise WriteError(f"cannot write {path} ({why}); {kept}. Free disk space or fix permissions") from None


class LinkError(WriteError):
    """A run directory is a symbolic link: ffcl neither writes nor deletes through it."""


def refuse_link(path: Path) -> None:
    """A one-line :class:`LinkError` if ``path`` is a symbolic link: ffcl writes and deletes only
    in folders, never through a link to somewhere else."""
    if Path(path).is_symlink():
        raise LinkError(f"{path} is a symbolic link (to {os.readlink(path)}); ffcl never writes or deletes through a link: "
                         f"remove the link or choose another --out")


def lock_run_dir(run_dir: Path, wait: bool = False) -> int | None:
    """Lock ``run_dir`` (which must exist) for this process: the descriptor holding the lock
    (closing it, or the process ending, releases it), or None if another process holds it and
    ``wait`` is false. With ``wait``, block until the other process lets go."""
    import fcntl

    fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def inherited_lock(run_dir: Path) -> int | None:
    """The descriptor of ``run_dir``'s lock handed down by the launching process (``FFCL_LOCK_FD``),
    if it really is that lock file; else None."""
    value = os.environ.get(LOCK_FD_ENV, "")
    if value == LAUNCHER_LOCKED:  # a descriptor of the file, to close like a lock; the launcher holds the lock
        with contextlib.suppress(OSError):
            return os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return None
    if not value.isdigit():
        return None
    fd = int(value)
    try:
        held, there = os.fstat(fd), os.lstat(Path(run_dir) / LOCK_FILE)
    except OSError:
        return None
    return fd if (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino) else None
