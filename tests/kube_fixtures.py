"""Pytest fixtures for Kubernetes tests against kubesim (loaded by tests/conftest.py).

- ``kube_emulator``: the emulator, one server per session, emptied before every test.
- ``kubeconfig``: a kubeconfig for it in ``tmp_path``, exported as ``KUBECONFIG``.
- ``fake_cluster``: kind's three nodes plus the controllers; call ``settle()`` to run them.

A test that uses any of them is marked ``kube`` automatically (``pytest -m kube``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import kubesim
import pytest

KUBE_FIXTURES = {"kube_emulator", "kubeconfig", "fake_cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if KUBE_FIXTURES & set(getattr(item, "fixturenames", ())) and \
                not item.get_closest_marker("kube"):
            item.add_marker(pytest.mark.kube)


def _forget_connections() -> None:
    """Drop kernel_helpers.kubernetes' cached clients (keyed by kubeconfig and context)."""
    with contextlib.suppress(ImportError):
        from kernel_helpers import kubernetes as kube

        forget = getattr(kube, "forget", None)
        if callable(forget):
            forget()


@pytest.fixture(scope="session")
def _kube_server() -> Iterator[kubesim.Emulator]:
    emulator = kubesim.Emulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def kube_emulator(_kube_server: kubesim.Emulator) -> Iterator[kubesim.Emulator]:
    """The session's emulator with no objects but the system namespaces, and no faults.

    A test may ``stop()`` it (an API server that goes away); the next test gets it
    started again, on a new port.
    """
    if not _kube_server.running:
        _kube_server.start()
    _kube_server.reset()
    yield _kube_server
    _kube_server.clear_faults()


@pytest.fixture
def kubeconfig(kube_emulator: kubesim.Emulator, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``$KUBECONFIG`` with one context, ``kind-dockyard`` (current), on the emulator.

    Write another with ``kube_emulator.write_kubeconfig(path, {...}, current=...)``.
    """
    path = kube_emulator.write_kubeconfig(tmp_path / "kube" / "config")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("DOCKYARD_KUBE_CONTEXT", raising=False)
    _forget_connections()
    yield path
    _forget_connections()


@pytest.fixture
def fake_cluster(kube_emulator: kubesim.Emulator) -> Iterator[kubesim.FakeCluster]:
    """kind's nodes (a control plane and two workers) with the lab images loaded.

    Nothing runs by itself: call ``fake_cluster.settle()`` (or ``reconcile()`` for one
    step) after changing objects, or ``start()`` for a background loop.
    """
    cluster = kubesim.FakeCluster(kube_emulator, restart_interval=0.05)
    cluster.seed_nodes()
    yield cluster
    cluster.stop()
    cluster.api.close()
