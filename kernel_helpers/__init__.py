"""Dockyard's kernel helpers: what a lab notebook imports.

``import kernel_helpers as dy`` or ``%load_ext kernel_helpers``. The public API is
re-exported here and loaded on first use, so the import itself costs almost nothing
(no docker SDK, no ipywidgets, no kubernetes client) and works on Binder, where
there is no Docker engine. Backends live one per module: ``engine`` (Docker),
``images``, ``progress`` (the SQLite store), ``widgets``, ``workspace``, ``diagnostics`` (doctor).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "build_images",
    "check",
    "compose_cmd",
    "doctor",
    "exercise",
    "hint",
    "lab_progress",
    "load_ipython_extension",
    "node_map",
    "solve",
    "start_lab",
    "workspace_root",
]

_NOTEBOOK_API = {name for name in __all__ if name != "load_ipython_extension"}


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK_API:
        return getattr(importlib.import_module("kernel_helpers.notebook"), name)
    raise AttributeError(f"module 'kernel_helpers' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kernel_helpers``: puts ``dy`` in the namespace and adds ``%dockyard``."""
    import sys

    module = sys.modules[__name__]
    ipython.push({"dy": module})

    def dockyard_magic(line: str) -> Any:
        words = line.split()
        if not words:
            return "usage: %dockyard check|hint|solve|progress|doctor [ID|LAB]"
        command, args = words[0], words[1:]
        if command in ("check", "exercise") and args:
            return module.exercise(args[0])
        if command == "hint" and args:
            return module.hint(args[0], int(args[1]) if len(args) > 1 else 1)
        if command == "solve" and args:
            return module.solve(args[0])
        if command == "progress" and args:
            return module.lab_progress(args[0])
        if command == "doctor":
            return module.doctor()
        return f"unknown or incomplete command: %dockyard {line}"

    ipython.register_magic_function(dockyard_magic, magic_kind="line", magic_name="dockyard")
