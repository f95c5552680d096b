"""Writing ffcl's own files: whole or not at all, and a full disk as one line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["WriteError", "atomic_path"]


class WriteError(RuntimeError):
    """A file could not be written (full disk, permissions); the previous version is intact."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it takes ``path``'s name only once the block
    finishes, so a reader never sees half a file. If writing fails (a full disk raises OSError, or
    RuntimeError from torch.save), the temporary file, which ffcl made, is removed, ``path`` keeps
    its previous content, and :class:`WriteError` says so in one line."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        kept = "its previous version is kept" if path.exists() else "there was no earlier version"
        why = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise WriteError(f"cannot write {path} ({why}); {kept}. Free disk space or fix permissions, then resume") from None
