"""Run the lab notebooks top to bottom in a real kernel, the way a student would.

Each notebook runs in three situations, and in each one no cell may raise:

* **no engine** (Binder): ``DOCKER_HOST`` points at a socket that does not exist. Live
  exercises say "needs a Docker engine"; static ones still grade ("not yet").
* **as shipped**, with the real engine and a clean lab: the student cells hold only
  comments, so every exercise must report "not yet", never a pass.
* **autosolved**, with ``DOCKYARD_AUTOSOLVE=1``: every exercise applies its reference
  solution first, so every one must pass. This proves the whole lab can reach 100 %.

The kernel is a subprocess started by nbclient (through pytest-notebook's
``execute_notebook``), and it inherits this process's environment; every test checks
that by finding its own workspace folder in the output of ``dy.start_lab``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubesim
import nbformat
import pytest
from pytest_notebook.execution import execute_notebook

import checkers
from kernel_helpers import engine as eng

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"
#: Every lab the registry knows; a new lab is covered as soon as it is registered.
LABS = tuple(sorted(checkers.LAB_MODULES))
#: Labs graded on a Kubernetes cluster; CI has none, so they run against the emulator.
KUBE_LABS = tuple(lab for lab in LABS if any(e.needs_cluster for e in checkers.all_exercises(lab)))
DOCKER_LABS = tuple(lab for lab in LABS if lab not in KUBE_LABS)
#: Per cell: an exercise cell may build an image or wait for a solution to settle.
CELL_TIMEOUT = 300

PASSED, NOT_YET, NEEDS_ENGINE = "✓ passed", "✗ not yet", "⚠ needs a Docker engine"
NEEDS_CLUSTER, REFUSED = "⚠ needs a Kubernetes cluster", "⛔ refused: not the lab's cluster"
#: The first line of a Check panel's text form: "Title (5 points, containers.first-container)".
PANEL_TITLE = re.compile(r"^.*\(\d+ points?, (?P<id>[\w.-]+)\)$")
#: The verdict's headline inside the panel: "  ✗ not yet — 0/5 points".
HEADLINE = re.compile(r"^\s*(?P<status>.+?) — (?P<score>\d+)/(?P<total>\d+) points$", re.M)

pytestmark = pytest.mark.notebook


def require_engine() -> None:
    """Skip without a Docker engine, or fail when ``DOCKYARD_REQUIRE_DOCKER=1``."""
    try:
        eng.connect(fresh=True)
    except eng.EngineUnavailable as exc:
        reason = f"no Docker engine: {exc}"
        if os.environ.get("DOCKYARD_REQUIRE_DOCKER") == "1":
            pytest.fail(f"DOCKYARD_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def lab_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private progress store and workspace, inherited by the notebook's kernel."""
    paths = {"home": tmp_path / "home", "workspace": tmp_path / "workspace",
             "cwd": tmp_path / "cwd"}
    paths["cwd"].mkdir()
    monkeypatch.setenv("DOCKYARD_HOME", str(paths["home"]))
    monkeypatch.setenv("DOCKYARD_WORKSPACE", str(paths["workspace"]))
    monkeypatch.delenv("DOCKYARD_AUTOSOLVE", raising=False)
    monkeypatch.delenv("DOCKYARD_LANG", raising=False)
    monkeypatch.delenv("DOCKYARD_KUBE_CONTEXT", raising=False)
    # No cluster unless a test provides one: never the machine's own kubeconfig.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return paths


def cleanup_lab(lab: str) -> None:
    """Remove what the lab's exercises created or graded (``checkers.cleanup`` per id)."""
    for exercise in checkers.all_exercises(lab):
        checkers.cleanup(exercise.id)


def run_notebook(lab: str, env: dict[str, Path]) -> nbformat.NotebookNode:
    """Execute ``labs/<lab>.ipynb``; fail with the cell's traceback if any cell raised."""
    notebook = nbformat.read(LABS_DIR / f"{lab}.ipynb", as_version=4)
    result = execute_notebook(notebook, cwd=str(env["cwd"]), timeout=CELL_TIMEOUT)
    assert result.exec_error is None, f"{lab}: a cell raised:\n{result.exec_error}"
    executed = result.notebook
    errors = [out for cell in executed.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors, f"{lab}: error outputs: {errors}"
    # The kernel inherited this test's environment: start_lab names our workspace.
    assert f"Workspace: {env['workspace']}" in all_text(executed), (
        f"{lab}: the kernel did not see DOCKYARD_WORKSPACE={env['workspace']}"
    )
    return executed


def output_texts(cell: nbformat.NotebookNode) -> list[str]:
    """The plain-text form of every output of a cell: streams and text/plain bundles."""
    texts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            texts.append(out.get("text", ""))
        elif out.get("output_type") in ("display_data", "execute_result"):
            texts.append(str(out.get("data", {}).get("text/plain", "")))
    return texts


def all_text(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(t for cell in notebook.cells for t in output_texts(cell))


def panels(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Exercise id → the text form of its Check panel, for every panel in the notebook."""
    found: dict[str, str] = {}
    for cell in notebook.cells:
        for text in output_texts(cell):
            first = text.splitlines()[0] if text else ""
            match = PANEL_TITLE.match(first)
            if match:
                assert match["id"] not in found, f"two Check panels for {match['id']}"
                found[match["id"]] = text
    return found


def headline(panel: str) -> str:
    """The verdict status in a panel: '✓ passed', '✗ not yet', '⚠ needs a Docker engine'…"""
    match = HEADLINE.search(panel)
    assert match, f"no verdict headline in:\n{panel}"
    return match["status"]


def lab_panels(lab: str, notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Every exercise of the lab has exactly one panel, and there are no strangers."""
    found = panels(notebook)
    wanted = {e.id for e in checkers.all_exercises(lab)}
    assert set(found) == wanted, f"{lab}: panels for {sorted(found)}, exercises {sorted(wanted)}"
    return found


# -- 1. no engine (Binder) ----------------------------------------------------------------


@pytest.mark.parametrize("lab", LABS)
def test_runs_without_an_engine(lab: str, lab_env: dict[str, Path],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    notebook = run_notebook(lab, lab_env)
    for exercise_id, panel in lab_panels(lab, notebook).items():
        status = headline(panel)
        if checkers.get(exercise_id).needs_engine:
            assert status == NEEDS_ENGINE, f"{exercise_id}: {status}\n{panel}"
            assert "needs a Docker engine" in panel
        elif checkers.get(exercise_id).needs_cluster:
            assert status == NEEDS_CLUSTER, f"{exercise_id}: {status}\n{panel}"
            assert "dockyard cluster up" in panel
        else:
            assert status == NOT_YET, f"{exercise_id}: {status}\n{panel}"


def test_welcome_example_works_when_switched_on(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Do what lab 00 tells the student: uncomment `%%writefile`, write a sentence.

    No engine (the exercise is static, so it grades on Binder too) and a workspace that
    does not exist yet and has a space in its path, as on a fresh Windows account.
    """
    workspace = tmp_path / "my workspace"
    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKYARD_WORKSPACE", str(workspace))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.delenv("DOCKYARD_AUTOSOLVE", raising=False)
    notebook = nbformat.read(LABS_DIR / "00-welcome.ipynb", as_version=4)
    [example] = [c for c in notebook.cells if c.source.startswith("# %%writefile")]
    example.source = example.source.splitlines()[0].removeprefix("# ") + "\nI am ready.\n"
    executed = execute_notebook(notebook, cwd=str(tmp_path), timeout=CELL_TIMEOUT)
    assert executed.exec_error is None, str(executed.exec_error)
    panel = panels(executed.notebook)["welcome.first-check"]
    assert headline(panel) == PASSED, panel
    assert (workspace / "hello-dockyard.txt").read_text() == "I am ready.\n"


@pytest.mark.parametrize("lab", LABS)
def test_runs_without_dockyard_installed(lab: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without the package: the first cell's fallback explains, nothing raises."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for module in ("kernel_helpers", "checkers"):
        (shadow / f"{module}.py").write_text('raise ImportError("simulated for a test")\n')
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    notebook = nbformat.read(LABS_DIR / f"{lab}.ipynb", as_version=4)
    result = execute_notebook(notebook, cwd=str(tmp_path), timeout=CELL_TIMEOUT)
    assert result.exec_error is None, f"{lab}: a cell raised:\n{result.exec_error}"
    text = all_text(result.notebook)
    assert "Dockyard is not installed in this kernel (simulated for a test)" in text
    assert not panels(result.notebook)


# -- 2. as shipped, with the engine: nothing passes by itself ------------------------------


@pytest.mark.docker
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("lab", DOCKER_LABS)
def test_as_shipped_nothing_passes(lab: str, lab_env: dict[str, Path]) -> None:
    require_engine()
    cleanup_lab(lab)
    try:
        notebook = run_notebook(lab, lab_env)
        for exercise_id, panel in lab_panels(lab, notebook).items():
            assert headline(panel) == NOT_YET, (
                f"{exercise_id} should say 'not yet' before the student does anything. If a "
                f"container of that name is left over from earlier work, remove it.\n{panel}"
            )
            assert PASSED not in panel, f"{exercise_id}:\n{panel}"
    finally:
        cleanup_lab(lab)


# -- 3. autosolved, with the engine: every exercise can pass -------------------------------


@pytest.mark.docker
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("lab", DOCKER_LABS)
def test_autosolve_passes_everything(lab: str, lab_env: dict[str, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    require_engine()
    cleanup_lab(lab)
    monkeypatch.setenv("DOCKYARD_AUTOSOLVE", "1")
    try:
        notebook = run_notebook(lab, lab_env)
        for exercise_id, panel in lab_panels(lab, notebook).items():
            assert headline(panel) == PASSED, f"{exercise_id}:\n{panel}"
        assert "Autosolve could not apply" not in all_text(notebook)
    finally:
        cleanup_lab(lab)


# -- 4. Kubernetes labs: a foreign context, and the emulator standing in for kind ---------


@pytest.mark.parametrize("lab", KUBE_LABS)
def test_kube_lab_refuses_a_foreign_current_context(
    lab: str, lab_env: dict[str, Path], kube_emulator: kubesim.Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A student whose kubectl points at their work cluster: every live check refuses."""
    path = kube_emulator.write_kubeconfig(lab_env["cwd"] / "kubeconfig",
                                          {"work-prod": kube_emulator.url}, current="work-prod")
    monkeypatch.setenv("KUBECONFIG", str(path))
    notebook = run_notebook(lab, lab_env)
    assert "Refused: kubectl's current context is 'work-prod'" in all_text(notebook)
    for exercise_id, panel in lab_panels(lab, notebook).items():
        if checkers.get(exercise_id).needs_cluster:
            assert headline(panel) == REFUSED, f"{exercise_id}:\n{panel}"
            assert "'work-prod'" in panel
    # Refusing means not touching: nothing was created behind the foreign context.
    assert not kube_emulator.objects("apps/v1/deployments")
    assert not kube_emulator.objects("services")


def _on_emulator(lab_env: dict[str, Path], kube_emulator: kubesim.Emulator,
                 fake_cluster: kubesim.FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the kernel at the emulator (context kind-dockyard) with controllers running."""
    path = kube_emulator.write_kubeconfig(lab_env["cwd"] / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    kubesim.finish_bounded_loops(fake_cluster)  # `for i in $(seq N)` clients end, as on a node
    fake_cluster.start()


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("lab", KUBE_LABS)
def test_kube_lab_as_shipped_nothing_passes(
    lab: str, lab_env: dict[str, Path], kube_emulator: kubesim.Emulator,
    fake_cluster: kubesim.FakeCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _on_emulator(lab_env, kube_emulator, fake_cluster, monkeypatch)
    notebook = run_notebook(lab, lab_env)
    assert "Kubernetes context: kind-dockyard" in all_text(notebook)
    for exercise_id, panel in lab_panels(lab, notebook).items():
        assert headline(panel) == NOT_YET, f"{exercise_id}:\n{panel}"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("lab", KUBE_LABS)
def test_kube_lab_autosolve_passes_everything(
    lab: str, lab_env: dict[str, Path], kube_emulator: kubesim.Emulator,
    fake_cluster: kubesim.FakeCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every reference solution, applied through the real client, passes its check.

    The fake controllers (tests/kubesim.py) play scheduler, controllers and kubelet;
    that they model a real cluster closely enough is what tests/kind proves on kind.
    """
    _on_emulator(lab_env, kube_emulator, fake_cluster, monkeypatch)
    monkeypatch.setenv("DOCKYARD_AUTOSOLVE", "1")
    notebook = run_notebook(lab, lab_env)
    for exercise_id, panel in lab_panels(lab, notebook).items():
        assert headline(panel) == PASSED, f"{exercise_id}:\n{panel}"
    assert "Autosolve could not apply" not in all_text(notebook)
