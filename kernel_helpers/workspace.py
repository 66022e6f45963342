"""The student's workspace: a copy of the lab notebooks that is theirs to edit.

``dockyard lab`` copies the shipped notebooks here on the first run. Later runs copy
only what changed upstream: an untouched notebook is refreshed, an edited one is
kept and the newer version is written beside it as ``NAME.new.ipynb``. A manifest
records the hash of each copied file, which is how "edited" is told apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"
MANIFEST = ".dockyard-manifest.json"


def root() -> Path:
    """``$DOCKYARD_WORKSPACE``, else ``~/dockyard-labs``."""
    env = os.environ.get("DOCKYARD_WORKSPACE")
    return Path(env).expanduser() if env else Path.home() / "dockyard-labs"


def shipped_notebooks() -> list[Path]:
    return sorted(LABS_DIR.glob("[0-9][0-9]-*.ipynb"))


def shipped_files() -> list[Path]:
    """Notebooks plus each lab's own folder of starter files (``labs/03-portability/...``)."""
    assets = [p for folder in sorted(LABS_DIR.glob("[0-9][0-9]-*/")) if folder.is_dir()
              for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    return shipped_notebooks() + assets


def lab_folder(lab: str) -> Path:
    """Where a lab's starter files and the student's files for it live in the workspace."""
    return root() / lab


def write_keeping(path: Path, text: str) -> Path | None:
    """Write a reference file for ``solve``; a student's different file is kept, not lost.

    The student's version moves to ``NAME.mine`` (``NAME.mine-2`` … if that exists too),
    and that path is returned; None when there was nothing of theirs to keep.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    kept: Path | None = None
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") != text:
        kept, serial = path.with_name(path.name + ".mine"), 1
        while kept.exists():
            serial += 1
            kept = path.with_name(f"{path.name}.mine-{serial}")
        path.replace(kept)
    path.write_text(text, encoding="utf-8")
    return kept


def _beside(path: Path) -> Path:
    """``NAME.new.ext`` (or ``NAME.new`` for a file like ``Dockerfile``)."""
    return path.with_name(f"{path.stem}.new{path.suffix}")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CopyResult:
    copied: list[str]
    refreshed: list[str]
    beside: list[str]
    kept: list[str]


def sync(target: Path | None = None) -> CopyResult:
    """Copy the shipped notebooks and starter files into the workspace, keeping edits."""
    target = target or root()
    target.mkdir(parents=True, exist_ok=True)
    manifest_path = target / MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    result = CopyResult([], [], [], [])
    for source in shipped_files():
        name = source.relative_to(LABS_DIR).as_posix()
        destination = target / name
        shipped = _digest(source)
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
            result.copied.append(name)
        elif _digest(destination) == shipped:
            result.kept.append(name)
        elif manifest.get(name) == _digest(destination):
            # Untouched since we copied it: safe to replace with the newer version.
            shutil.copy2(source, destination)
            result.refreshed.append(name)
        else:
            beside = _beside(destination)
            if not beside.exists() or _digest(beside) != shipped:
                shutil.copy2(source, beside)
                result.beside.append(beside.relative_to(target).as_posix())
            result.kept.append(name)
            continue
        manifest[name] = shipped
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return result
