"""One check for the folders users name (`--data`, `--checkpoint`, `context_source`).

"does not exist" about a file that exists sends users looking in the wrong place: the
error says which of the two it is.
"""
from __future__ import annotations

import os
from pathlib import Path


def require_folder(path: str | os.PathLike, what: str) -> Path:
    """`path` (user-expanded) if it is a folder; else an error naming it and saying what it is."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path}: is a file, but the {what} must be a folder")
    raise FileNotFoundError(f"{path}: {what} folder does not exist")
