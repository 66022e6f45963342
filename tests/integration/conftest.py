"""Fixtures for tests against a real engine: a client, and cleanup of what a test made.

Everything a test creates on its own (decoys, unlabelled containers) is registered
with ``made`` and removed by id afterwards, whatever the test's outcome. What the
lab created is removed by ``checkers.reset`` against the test's own progress store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import checkers
from kernel_helpers import engine as eng


@pytest.fixture
def client(engine: eng.Engine) -> Any:
    return engine.client


@pytest.fixture
def made(client: Any) -> Iterator[Callable[[Any], Any]]:
    """``made(obj)`` registers a container, volume, network or image for removal by id."""
    objects: list[Any] = []

    def register(obj: Any) -> Any:
        objects.append(obj)
        return obj

    yield register
    from docker.errors import APIError, NotFound
    from docker.models.containers import Container
    from docker.models.images import Image

    for obj in reversed(objects):
        with contextlib.suppress(NotFound, APIError):
            if isinstance(obj, Container):
                obj.remove(force=True)
            elif isinstance(obj, Image):
                client.images.remove(obj.id, force=True)
            else:
                obj.remove()


@pytest.fixture
def lab_reset() -> Iterator[None]:
    """Afterwards, reset every lab: removes what solves labelled and checks recorded."""
    yield
    with contextlib.suppress(checkers.RunError, eng.EngineUnavailable):
        checkers.reset()


@pytest.fixture
def clear_names(engine: eng.Engine) -> Callable[..., None]:
    """Remove leftovers of an earlier, interrupted run that used these test-only names."""

    def clear(*names: str) -> None:
        for name in names:
            found = eng.find_container(engine, name)
            if found is not None:
                found.remove(force=True)

    return clear
