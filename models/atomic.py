"""Atomic writes of folders and text files (temp + rename), shared by checkpoints, data sets
and results. Imports nothing heavy, so the data writer stays torch-free.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def swap_into_place(tmp_dir: Path, final_dir: Path) -> None:
    """Rename tmp_dir to final_dir, replacing an existing folder only after the new one is complete."""
    old = None
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory_write(final_dir: str | os.PathLike) -> Iterator[Path]:
    """Yields a temp folder beside `final_dir`, swapped in on success.

    A crash inside the block leaves `final_dir` (e.g. the previous checkpoint) untouched.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        yield tmp_dir
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    swap_into_place(tmp_dir, final_dir)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], suffix: str = "") -> Path:
    """`write(tmp)` to a temp file beside `path`, then rename it there: never a half-written file.

    `suffix` ends the temp name, for writers that insist on an extension (SB3 adds `.zip`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text atomically (see `atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))
