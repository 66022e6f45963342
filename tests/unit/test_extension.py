"""``%load_ext kernel_helpers`` in a real IPython shell: ``dy`` appears, ``%dockyard`` works."""

from __future__ import annotations

import pytest

IPython = pytest.importorskip("IPython")


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    yield ip
    InteractiveShell.clear_instance()


def test_load_ext_puts_dy_in_the_namespace_and_registers_the_magic(shell) -> None:
    shell.run_line_magic("load_ext", "kernel_helpers")
    import kernel_helpers

    assert shell.user_ns["dy"] is kernel_helpers
    assert "dockyard" in shell.magics_manager.magics["line"]
    hint = shell.run_line_magic("dockyard", "hint welcome.first-check 2")
    assert hint.startswith("Hint 2 of 2:")
    assert "usage" in shell.run_line_magic("dockyard", "")
    assert "unknown or incomplete" in shell.run_line_magic("dockyard", "frobnicate")


def test_the_magic_checks_a_static_exercise_without_an_engine(shell, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    shell.run_line_magic("load_ext", "kernel_helpers")
    panel = shell.run_line_magic("dockyard", "check welcome.first-check")
    assert panel.verdict is not None and panel.verdict.status == "fail"
    assert "welcome.first-check" in panel._repr_mimebundle_()["text/plain"]
