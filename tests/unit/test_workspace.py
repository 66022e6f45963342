"""Workspace sync: copy once, refresh what the student left alone, never overwrite edits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_helpers import workspace


def notebook(source: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": source}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "01-first.ipynb").write_text(notebook("first v1"))
    (labs / "02-second.ipynb").write_text(notebook("second v1"))
    (labs / "README.md").write_text("not a notebook")
    monkeypatch.setattr(workspace, "LABS_DIR", labs)
    return labs


def test_first_run_copies_every_notebook(shipped: Path, tmp_path: Path) -> None:
    target = tmp_path / "ws"
    result = workspace.sync(target)
    assert result.copied == ["01-first.ipynb", "02-second.ipynb"]
    assert (target / "01-first.ipynb").read_text() == notebook("first v1")
    assert not (target / "README.md").exists()
    manifest = json.loads((target / workspace.MANIFEST).read_text())
    assert set(manifest) == set(result.copied)


def test_workspace_root_follows_the_environment(tmp_path: Path) -> None:
    assert workspace.root() == tmp_path / "workspace"


def test_defaults_to_the_workspace_root(shipped: Path, tmp_path: Path) -> None:
    result = workspace.sync()
    assert "01-first.ipynb" in result.copied
    assert (tmp_path / "workspace" / "01-first.ipynb").exists()


def test_a_second_run_changes_nothing(shipped: Path, tmp_path: Path) -> None:
    target = tmp_path / "ws"
    workspace.sync(target)
    again = workspace.sync(target)
    assert again.copied == [] and again.refreshed == [] and again.beside == []
    assert "01-first.ipynb" in again.kept


def test_an_edited_notebook_is_kept_and_the_new_one_goes_beside_it(
    shipped: Path, tmp_path: Path
) -> None:
    target = tmp_path / "ws"
    workspace.sync(target)
    mine = notebook("first v1 + my answers")
    (target / "01-first.ipynb").write_text(mine)
    (shipped / "01-first.ipynb").write_text(notebook("first v2"))

    result = workspace.sync(target)
    assert (target / "01-first.ipynb").read_text() == mine, "the student's edits survive"
    assert result.beside == ["01-first.new.ipynb"]
    assert (target / "01-first.new.ipynb").read_text() == notebook("first v2")
    assert "01-first.ipynb" in result.kept and "01-first.ipynb" not in result.refreshed

    # Nothing new upstream: the .new copy is not written again.
    assert workspace.sync(target).beside == []
    assert (target / "01-first.ipynb").read_text() == mine


def test_an_unedited_notebook_is_refreshed(shipped: Path, tmp_path: Path) -> None:
    target = tmp_path / "ws"
    workspace.sync(target)
    (shipped / "02-second.ipynb").write_text(notebook("second v2"))

    result = workspace.sync(target)
    assert result.refreshed == ["02-second.ipynb"] and result.beside == []
    assert (target / "02-second.ipynb").read_text() == notebook("second v2")
    assert not (target / "02-second.new.ipynb").exists()


def test_a_lost_manifest_errs_on_the_side_of_keeping(shipped: Path, tmp_path: Path) -> None:
    target = tmp_path / "ws"
    workspace.sync(target)
    (target / workspace.MANIFEST).write_text("{ broken")
    (shipped / "02-second.ipynb").write_text(notebook("second v2"))

    result = workspace.sync(target)
    assert (target / "02-second.ipynb").read_text() == notebook("second v1")
    assert result.beside == ["02-second.new.ipynb"]


def test_a_deleted_notebook_is_copied_again(shipped: Path, tmp_path: Path) -> None:
    target = tmp_path / "ws"
    workspace.sync(target)
    (target / "02-second.ipynb").unlink()
    assert workspace.sync(target).copied == ["02-second.ipynb"]


def test_write_keeping_never_loses_a_students_file(tmp_path: Path) -> None:
    target = tmp_path / "lab" / "compose.yaml"
    assert workspace.write_keeping(target, "reference\n") is None  # nothing to keep
    assert workspace.write_keeping(target, "reference\n") is None  # same text: no copy
    target.write_text("mine, first try\n")
    first = workspace.write_keeping(target, "reference\n")
    target.write_text("mine, second try\n")
    second = workspace.write_keeping(target, "reference\n")
    assert first is not None and first.name == "compose.yaml.mine"
    assert second is not None and second.name == "compose.yaml.mine-2"
    assert first.read_text() == "mine, first try\n"
    assert second.read_text() == "mine, second try\n"
    assert target.read_text() == "reference\n"
