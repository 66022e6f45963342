"""The registry: every exercise, discoverable by id and by lab.

Lab modules register their exercises simply by being imported (``Exercise``'s
constructor calls :func:`register`). :data:`LAB_MODULES` is the one list of labs;
modules are imported on first use so ``import checkers`` stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkers._core.model import Exercise

#: Notebook name -> checker module. Course order is the notebooks' numeric order.
LAB_MODULES: dict[str, str] = {
    "00-welcome": "checkers.welcome",
    "01-containers-vs-vms": "checkers.containers_vs_vms",
    "02-isolation": "checkers.isolation",
    "03-portability": "checkers.portability",
    "04-multi-container": "checkers.multi_container",
    "05-orchestration-swarm": "checkers.orchestration_swarm",
    "06-kubernetes": "checkers.kubernetes",
    "07-deployment-patterns": "checkers.deployment_patterns",
}

_exercises: dict[str, Exercise] = {}
_loaded = False


class UnknownExercise(LookupError):
    """An id that names no exercise; the message suggests the closest ones."""


class UnknownLab(LookupError):
    """A lab name that names no lab; the message lists the labs."""


def register(exercise: Exercise) -> None:
    if exercise.lab not in LAB_MODULES:
        raise ValueError(f"{exercise.id}: unknown lab '{exercise.lab}'")
    _exercises[exercise.id] = exercise


def load_all() -> None:
    global _loaded
    if not _loaded:
        for module in LAB_MODULES.values():
            importlib.import_module(module)
        _loaded = True


def all_exercises(lab: str | None = None) -> list[Exercise]:
    load_all()
    if lab is not None:
        lab = resolve_lab(lab)
    order = sorted(LAB_MODULES)
    found = [e for e in _exercises.values() if lab is None or e.lab == lab]
    # Stable course order: by lab, then by declaration order within the lab.
    return sorted(found, key=lambda e: order.index(e.lab))


def get(exercise_id: str) -> Exercise:
    load_all()
    if exercise_id in _exercises:
        return _exercises[exercise_id]
    close = difflib.get_close_matches(exercise_id, list(_exercises), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownExercise(
        f"there is no exercise '{exercise_id}'.{hint} `dockyard exercises` lists them all."
    )


def resolve_lab(name: str) -> str:
    """Accept ``02-isolation``, ``02`` or ``isolation`` for a lab."""
    if name in LAB_MODULES:
        return name
    for lab in sorted(LAB_MODULES):
        number, _, slug = lab.partition("-")
        if name in (number, slug, str(int(number))):
            return lab
    raise UnknownLab(f"there is no lab '{name}'. Labs: {', '.join(sorted(LAB_MODULES))}.")
