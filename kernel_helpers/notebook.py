"""What a lab notebook calls: start a lab, show an exercise, hints, progress, doctor.

Everything here works with no Docker engine (Binder): checks then say "needs a
Docker engine" and the notebook carries on. ``DOCKYARD_AUTOSOLVE=1`` makes every
exercise apply its reference solution before checking, which is how the test suite
proves that a whole notebook can reach 100 %.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernel_helpers import engine as eng
from kernel_helpers import kubernetes as kube
from kernel_helpers import progress


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python: print the text form
        print(obj)
        return
    display(obj)


def _lab_points(lab: str) -> tuple[int, int]:
    import checkers

    exercises = checkers.all_exercises(lab)
    total = sum(e.points for e in exercises)
    try:
        best = {p.exercise: p.best_score for p in progress.store().summary(lab)}
    except progress.ProgressUnavailable:
        best = {}
    return int(sum(best.get(e.id, 0) for e in exercises)), total


def start_lab(lab: str) -> Any:
    """Mark the lab as started (resources made from now on can be reset) and show progress."""
    import checkers
    from kernel_helpers.widgets import LabProgress

    lab = checkers.resolve_lab(lab)
    try:
        progress.store().start_lab(lab)
    except progress.ProgressUnavailable as exc:
        print(f"Progress will not be saved: {exc}")
    if lab in kube.LAB_NAMESPACES:
        _show_cluster(lab)
    else:
        try:
            engine = eng.connect()
            print(f"Docker engine: {engine.endpoint.url} "
                  f"(server {engine.info().get('ServerVersion')})")
        except eng.EngineUnavailable as exc:
            print(f"No Docker engine here, so live checks will say so. ({exc})")
    # Exercises ask for files in the workspace; without `dockyard lab` (Binder, a fresh
    # DOCKYARD_WORKSPACE) the folder may not exist yet, and %%writefile would fail.
    try:
        Path(workspace_root()).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"Could not create the workspace folder: {exc}")
    print(f"Workspace: {workspace_root()}")
    earned, total = _lab_points(lab)
    return LabProgress(lab, earned, total)


def _show_cluster(lab: str) -> None:
    """Which cluster the lab will use, and its namespace; or why there is none."""
    from checkers._core.runner import _bounded, _Timeout

    def connect_and_prepare() -> str:
        cluster = kube.connect()
        return f"{cluster.context} (namespace {cluster.ensure_namespace(lab)})"

    try:
        where = _bounded(connect_and_prepare, 30)
    except kube.WrongContext as exc:
        print(f"Refused: {exc}")
    except (kube.ClusterUnavailable, kube.ClusterFault) as exc:
        print(f"No Kubernetes cluster here, so live checks will say so. ({exc})")
    except _Timeout:
        print("The cluster did not answer within 30 s; checks will say so if it stays silent.")
    except Exception as exc:  # an API that stops answering, RBAC: say it, never raise
        print(f"The cluster could not be prepared: {kube.explain_api_error(exc, 'prepare it')}")
    else:
        print(f"Kubernetes context: {where}. Use `kubectl -n {kube.namespace_for(lab)} ...`.")


def workspace_root() -> str:
    from kernel_helpers import workspace

    return str(workspace.root())


def _check(exercise_id: str) -> Any:
    import checkers
    from kernel_helpers.widgets import refresh_progress

    verdict = checkers.check(exercise_id, source="notebook")
    earned, total = _lab_points(verdict.lab)
    refresh_progress(verdict.lab, earned, total)
    return verdict


def exercise(exercise_id: str) -> Any:
    """The Check panel for one exercise, with its current verdict already shown."""
    import checkers
    from checkers._core.runner import autosolve_enabled
    from kernel_helpers.widgets import CheckWidget

    item = checkers.get(exercise_id)
    if autosolve_enabled():
        try:
            checkers.solve(exercise_id)
        except checkers.RunError as exc:
            print(f"Autosolve could not apply the solution: {exc}")
    return CheckWidget(item, lambda: _check(exercise_id), verdict=_check(exercise_id))


def check(exercise_id: str) -> Any:
    """Grade one exercise now and return the verdict (renders as HTML)."""
    return _check(exercise_id)


class HintText(str):
    """A hint that a notebook shows as plain text, not as a quoted string."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def hint(exercise_id: str, number: int = 1) -> HintText:
    """Hint ``number`` (1-based) for an exercise."""
    import checkers

    hints = checkers.get(exercise_id).localized().hints
    number = max(1, min(number, len(hints)))
    return HintText(f"Hint {number} of {len(hints)}: {hints[number - 1]}")


def solve(exercise_id: str) -> None:
    """Catch up: apply the reference solution (``dockyard solve ID``)."""
    import checkers

    try:
        checkers.solve(exercise_id)
        print(f"Applied the reference solution for {exercise_id}. Check it to see the state.")
    except checkers.RunError as exc:
        print(f"Could not apply the solution: {exc}")


def lab_progress(lab: str) -> Any:
    """A progress bar for a lab."""
    import checkers
    from kernel_helpers.widgets import LabProgress

    lab = checkers.resolve_lab(lab)
    return LabProgress(lab, *_lab_points(lab))


def build_images(*names: str) -> None:
    """``dockyard images build NAME...``, with the engine's build log as progress."""
    from kernel_helpers import images

    try:
        engine = eng.connect()
    except eng.EngineUnavailable as exc:
        print(f"Skipped: building images needs a Docker engine. {exc}")
        return
    wanted = names or tuple(i.name for i in images.IMAGES)
    for name in wanted:
        spec = images.spec(name)
        if images.present(engine, spec.tag):
            print(f"✓ {spec.tag} is already built")
            continue
        print(f"Building {spec.tag} …", flush=True)
        try:
            images.build(spec, engine, log=lambda line: print("   ", line, flush=True))
            print(f"✓ built {spec.tag}")
        except images.ImageBuildError as exc:
            print(f"✗ {exc}")


def compose_cmd() -> str:
    """How Compose is spelled here: ``docker compose`` (v2) or ``docker-compose`` (v1)."""
    from kernel_helpers import compose

    return compose.command()


def node_map(namespace: str | None = None, selector: Any = None) -> Any:
    """The cluster's nodes with their pods, drawn from live state (``kubectl get pods -o wide``).

    ``namespace`` defaults to lab 06's; ``selector`` is ``{"app": "web"}`` or ``"app=web"``.
    With no cluster it prints why and shows nothing.
    """
    from kernel_helpers import kube_plots

    return kube_plots.node_map(namespace, selector)


def doctor() -> Any:
    """The environment check, as a table (``dockyard doctor``)."""
    from kernel_helpers import diagnostics as doc

    return doc.run()

