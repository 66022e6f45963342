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


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CopyResult:
    copied: list[str]
    refreshed: list[str]
    beside: list[str]
    kept: list[str]


def sync(target: Path | None = None) -> CopyResult:
    """Copy the shipped notebooks into the workspace without losing a student's edits."""
    target = target or root()
    target.mkdir(parents=True, exist_ok=True)
    manifest_path = target / MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    result = CopyResult([], [], [], [])
    for source in shipped_notebooks():
        name, destination = source.name, target / source.name
        shipped = _digest(source)
        if not destination.exists():
            shutil.copy2(source, destination)
            result.copied.append(name)
        elif _digest(destination) == shipped:
            result.kept.append(name)
        elif manifest.get(name) == _digest(destination):
            # Untouched since we copied it: safe to replace with the newer version.
            shutil.copy2(source, destination)
            result.refreshed.append(name)
        else:
            beside = destination.with_suffix(".new.ipynb")
            if not beside.exists() or _digest(beside) != shipped:
                shutil.copy2(source, beside)
                result.beside.append(beside.name)
            result.kept.append(name)
            continue
        manifest[name] = shipped
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return result
