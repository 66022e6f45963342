"""Student-facing words shared by every exercise, and the hook for translations.

Each exercise keeps its own English :class:`~checkers._core.model.Text` beside its
check. A translation (say Korean, the source article's language) is a JSON file
``checkers/locale/<lang>.json`` mapping exercise ids to any of ``title``, ``task``,
``hints``, ``subchecks`` and ``reasons``; missing keys fall back to English, so a
partial translation never breaks a check. ``DOCKYARD_LANG`` picks the language.
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from checkers._core.model import Text

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

#: Reasons any check may give; an exercise's own ``reasons`` override these by key.
COMMON_REASONS = {
    "missing_container": (
        "There is no container named '{name}' yet. Create it with exactly that name "
        "(`docker ps -a` lists what exists)."
    ),
    "missing_image": "The image '{image}' is not on this engine yet.",
    "wrong_image": "'{name}' runs image '{actual}', but this exercise needs '{expected}'.",
    "not_running": "'{name}' is {status}, but it should be running.",
    "blocked": "Not checked yet: fix '{first}' first.",
    "needs_engine": "This exercise needs a Docker engine: {detail}",
    "needs_engine_short": "Not checked: no Docker engine answered (see above).",
    "timeout": (
        "The check did not finish within {seconds:g} s, so it was stopped. The engine may be "
        "overloaded; try again, and run `dockyard doctor` if it keeps happening."
    ),
    "engine_lost": "The Docker engine stopped answering during the check: {detail}",
    "needs_cluster": "This exercise needs a Kubernetes cluster: {detail}",
    "needs_cluster_short": "Not checked: no Kubernetes cluster answered (see above).",
    "refused": "Refused: {detail}",
    "refused_short": "Not checked: Dockyard only acts on the lab's own cluster (see above).",
    "cluster_lost": "The Kubernetes API stopped answering during the check: {detail}",
    "cluster_fault": "{detail}",
    "missing_object": (
        "There is no {kind} named '{name}' in namespace '{namespace}' yet "
        "(`kubectl get {kind_lower} -n {namespace}` lists what exists)."
    ),
    "error": "The check could not run: {detail}",
    "not_owned": (
        "'{name}' existed before this lab started, so Dockyard treats it as yours and will not "
        "grade or remove it. Pick the exercise's name after `dockyard reset`, or rename yours."
    ),
}


def language() -> str:
    return os.environ.get("DOCKYARD_LANG", "en").split("_")[0].lower()


@cache
def _catalog(lang: str) -> dict[str, dict[str, Any]]:
    path = LOCALE_DIR / f"{lang}.json"
    if lang == "en" or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a broken translation must never break grading
    return data if isinstance(data, dict) else {}


def translate(exercise_id: str, text: Text, lang: str | None = None) -> Text:
    entry = _catalog(lang or language()).get(exercise_id)
    if not entry or not isinstance(entry, dict):
        return text
    merged: dict[str, Any] = {}
    for key in ("title", "task"):
        if isinstance(entry.get(key), str):
            merged[key] = entry[key]
    if isinstance(entry.get("hints"), list) and entry["hints"]:
        merged["hints"] = tuple(str(h) for h in entry["hints"])
    for key in ("subchecks", "reasons"):
        if isinstance(entry.get(key), dict):
            merged[key] = {**getattr(text, key), **entry[key]}
    return dataclasses.replace(text, **merged)


def reason(text: Text, key: str, **fields: Any) -> str:
    template = text.reasons.get(key) or COMMON_REASONS.get(key) or key
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return template
