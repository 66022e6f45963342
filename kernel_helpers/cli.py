"""The ``dockyard`` command for students and instructors.

Every command turns faults into one clear line and an exit code (0 ok, 1 a check or
selftest failed, 2 bad input or no engine), never a traceback; set
``DOCKYARD_DEBUG=1`` to see one anyway. For ``dockyard cluster``: 1 when kind or the
cluster failed, 2 for a missing tool (kind, Docker) or a context it may not manage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Dockyard: hands-on Docker labs, graded from live engine state.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
images_app = typer.Typer(help="The lab's own images, built from this repository.",
                         no_args_is_help=True)
app.add_typer(images_app, name="images")
cluster_app = typer.Typer(help="The lab's local Kubernetes cluster (kind, 3 nodes).",
                          no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
console = Console()
errors = Console(stderr=True)


class Exit(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


ContextOption = Annotated[str | None, typer.Option(
    "--context", metavar="NAME",
    help="Kubernetes context for the Kubernetes labs instead of the lab's kind cluster "
         "(kind-dockyard): Docker Desktop, k3d, minikube or a shared cluster. Sets "
         "DOCKYARD_KUBE_CONTEXT for this command only; without it, Dockyard refuses any "
         "current context but kind-dockyard.")]


def _use_context(context: str | None) -> None:
    """``--context NAME``: choose the kube context for this process (and its children)."""
    if context is not None:
        if not context.strip():
            raise Exit("--context needs a context name (`kubectl config get-contexts` lists them)")
        os.environ["DOCKYARD_KUBE_CONTEXT"] = context.strip()


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    context: ContextOption = None,
) -> None:
    """Check the environment for the Docker labs and the Kubernetes labs (kind, kubectl...).

    Exits 0 when the Docker labs can run; the Kubernetes verdict is its own line.
    """
    from rich.markup import escape

    from kernel_helpers import diagnostics as doc

    _use_context(context)
    report = doc.run()
    if as_json:
        _print_json(report.to_dict())
    else:
        table = Table("", "check", "finding", show_header=False, box=None)
        colours = {"✓": "green", "✗": "red", "!": "yellow"}
        for f in report.findings:
            mark = f"[{colours[f.mark]}]{f.mark}[/]"
            detail = escape(f.detail) + (f"\n[dim]→ {escape(f.fix)}[/]" if f.fix and not f.ok
                                         else "")
            table.add_row(mark, f.name, detail)
        console.print(table)
        for verdict, ok in zip(report.verdicts(), (report.ok, report.kube_ok), strict=True):
            console.print(verdict if ok else f"[red]{verdict}[/]")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def lab(
    directory: Annotated[str | None, typer.Option("--dir", help="workspace folder")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser")] = False,
    copy_only: Annotated[bool, typer.Option("--copy-only", help="copy, do not start")] = False,
) -> None:
    """Copy the labs into your workspace (keeping your edits) and open JupyterLab there."""
    from pathlib import Path

    from kernel_helpers import workspace

    target = Path(directory).expanduser() if directory else workspace.root()
    result = workspace.sync(target)
    for name in result.copied:
        console.print(f"copied {name}")
    for name in result.refreshed:
        console.print(f"updated {name} (you had not edited it)")
    for name in result.beside:
        console.print(f"[yellow]you edited a notebook; the newer version is beside it: {name}[/]")
    console.print(f"Workspace: {target}")
    if copy_only:
        return
    env = {**os.environ, "DOCKYARD_WORKSPACE": str(target)}
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={target}"]
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Workshop VMs and containers often run as root; JupyterLab refuses without this.
        command.append("--allow-root")
    raise typer.Exit(subprocess.call(command, env=env))


@app.command()
def exercises(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    lab_name: Annotated[str | None, typer.Option("--lab")] = None,
) -> None:
    """List every exercise: id, lab, title, points, hints, sub-checks."""
    import checkers

    items = [e.describe() for e in checkers.all_exercises(lab_name)]
    if as_json:
        _print_json(items)
        return
    table = Table("id", "lab", "title", "points", "sub-checks", "hints")
    for item in items:
        table.add_row(item["id"], item["lab"], item["title"], str(item["points"]),
                      str(len(item["subchecks"])), str(len(item["hints"])))
    console.print(table)


@app.command()
def check(
    exercise_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    context: ContextOption = None,
) -> None:
    """Grade one exercise from live state: exit 0 on pass, 1 otherwise."""
    import checkers

    _use_context(context)
    verdict = checkers.check(exercise_id, source="cli")
    if as_json:
        _print_json(verdict.to_dict())
    else:
        console.print(str(verdict), highlight=False, markup=False)
    raise typer.Exit(0 if verdict.passed else 1)


@app.command()
def solve(
    exercise_id: Annotated[str, typer.Argument(metavar="ID")],
    context: ContextOption = None,
) -> None:
    """Apply an exercise's reference solution (to catch up)."""
    import checkers

    _use_context(context)
    with console.status(f"solving {exercise_id}…"):
        checkers.solve(exercise_id)
    console.print(f"Solved {exercise_id}. `dockyard check {exercise_id}` shows the result.")


@app.command()
def reset(
    lab_name: Annotated[str | None, typer.Argument(metavar="[LAB]")] = None,
    images: Annotated[bool, typer.Option("--images", help="also remove lab images")] = False,
    context: ContextOption = None,
) -> None:
    """Remove what the lab created or graded; a student's own resources are never touched."""
    import checkers

    _use_context(context)
    report = checkers.reset(lab_name, include_images=images)
    for item in report.removed:
        if not item.error:
            console.print(f"removed {item.kind} {item.name} ({item.resource_id[:12]}, {item.why})")
    for problem in report.problems:
        errors.print(f"[yellow]{problem}[/]")
    if not report.removed:
        console.print("Nothing to remove.")
    raise typer.Exit(1 if report.problems else 0)


@app.command("progress")
def show_progress(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    lab_name: Annotated[str | None, typer.Option("--lab")] = None,
) -> None:
    """Your best score per exercise, from the progress store."""
    import checkers
    from kernel_helpers import progress

    store = progress.store()
    lab_name = checkers.resolve_lab(lab_name) if lab_name else None
    done = {p.exercise: p for p in store.summary(lab_name)}
    rows: list[dict[str, Any]] = []
    for item in checkers.all_exercises(lab_name):
        mine = done.get(item.id)
        rows.append({"id": item.id, "lab": item.lab, "points": item.points,
                     "best": mine.best_score if mine else 0, "attempts": mine.attempts if mine
                     else 0, "passed": bool(mine and mine.passed),
                     "last": mine.last_at if mine else ""})
    if as_json:
        _print_json(rows)
        return
    table = Table("exercise", "best", "attempts", "last attempt", title=f"Progress ({store.path})")
    for row in rows:
        mark = "[green]✓[/] " if row["passed"] else ""
        table.add_row(row["id"], f"{mark}{row['best']:g}/{row['points']}", str(row["attempts"]),
                      row["last"][:19])
    console.print(table)
    if store.warning:
        errors.print(f"[yellow]{store.warning}[/]")


@app.command()
def selftest(
    lab_name: Annotated[str | None, typer.Argument(metavar="[LAB]")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    context: ContextOption = None,
) -> None:
    """For every exercise: cleanup → setup → check must fail → solve → check must pass → cleanup."""
    import checkers
    from checkers._core import runner

    _use_context(context)
    items = checkers.all_exercises(lab_name)
    missing = runner.engine_missing_for(items)
    if missing:
        raise Exit(f"selftest needs a Docker engine for these labs: {missing}")
    no_cluster = runner.cluster_missing_for(items)
    if no_cluster and all(item.needs_cluster for item in items):
        raise Exit(f"selftest needs a Kubernetes cluster for these labs: {no_cluster}")
    # Without a cluster the Kubernetes exercises are listed as not run, never as proven.
    not_run = [item for item in items if no_cluster and item.needs_cluster]
    items = [item for item in items if item not in not_run]
    rows = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=errors, transient=True, disable=as_json) as bar:
        task = bar.add_task("selftest", total=len(items))
        for item in items:
            bar.update(task, description=item.id)
            rows.append(runner.selftest_one(item))
            bar.advance(task)
    failed = [r for r in rows if not r.ok]
    skipped = [runner.SelftestRow(item.id, problem=f"not run: no Kubernetes cluster ({no_cluster})")
               for item in not_run]
    if as_json:
        _print_json([vars(r) for r in rows + skipped])
    else:
        table = Table("exercise", "before solve", "after solve", "seconds", "result",
                      title="Dockyard selftest")
        for r in rows:
            result = "[green]ok[/]" if r.ok else f"[red]FAIL[/] {r.problem}"
            table.add_row(r.exercise, r.before, r.after, f"{r.seconds:.1f}", result)
        for r in skipped:
            table.add_row(r.exercise, "", "", "", "[yellow]not run[/]")
        console.print(table)
        summary = f"{len(rows) - len(failed)} passed, {len(failed)} failed"
        if skipped:
            summary += f", {len(skipped)} not run: no Kubernetes cluster ({no_cluster})"
        console.print(summary)
    raise typer.Exit(1 if failed else (2 if skipped else 0))


@images_app.command("list")
def images_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The lab images and whether each is built."""
    from kernel_helpers import engine as eng
    from kernel_helpers import images

    rows = images.status(eng.connect())
    if as_json:
        _print_json(rows)
        return
    table = Table("name", "tag", "built", "size", "what for")
    for row in rows:
        table.add_row(row["name"], row["tag"], "✓" if row["present"] else "✗",
                      f"{row['size'] / 2**20:.1f} MiB" if row["present"] else "", row["summary"])
    console.print(table)


@images_app.command("build")
def images_build(
    names: Annotated[list[str] | None, typer.Argument(metavar="[NAME]...")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="build even if present")] = False,
) -> None:
    """Build lab images from labs/images/*/Dockerfile, showing progress. Never pulls."""
    from kernel_helpers import engine as eng
    from kernel_helpers import images

    engine = eng.connect()
    specs = [images.spec(n) for n in names] if names else list(images.IMAGES)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} images"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("images", total=len(specs))
        for spec in specs:
            if not rebuild and images.present(engine, spec.tag):
                bar.console.print(f"✓ {spec.tag} already built")
                bar.advance(task)
                continue
            bar.update(task, description=f"building {spec.tag}")

            def show(line: str, tag: str = spec.tag) -> None:
                if line.startswith("Step "):
                    bar.update(task, description=f"{tag}: {line[:70]}")

            images.build(spec, engine, log=show)
            bar.console.print(f"✓ built {spec.tag}")
            bar.advance(task)


def _cluster_table(status: Any) -> None:
    """``kubectl get nodes``, with the lab images each node holds."""
    from rich.markup import escape

    kind_line = (f"kind {status.kind_version or 'not installed'}" if status.kind_managed
                 else "kind: not applicable (a chosen context)")
    console.print(f"context [bold]{escape(status.context)}[/] · {escape(kind_line)} · "
                  f"API {'answers' if status.reachable else 'does not answer'}")
    if status.nodes:
        table = Table("node", "roles", "status", "kubelet", "lab images on the node")
        for node in status.nodes:
            ready = "[green]Ready[/]" if node.ready else "[red]NotReady[/]"
            table.add_row(node.name, ", ".join(node.roles), ready, node.kubelet,
                          ", ".join(node.images) or "[dim]none[/]")
        console.print(table)
    for problem in status.problems:
        errors.print(f"[red]✗[/] {escape(problem)}")
    for note in status.notes:
        errors.print(f"[yellow]![/] {escape(note)}")


@cluster_app.command("up")
def cluster_up() -> None:
    """Create the lab's kind cluster (or reuse it), wait until Ready, preload the lab images.

    kind create cluster --name dockyard --config labs/06-kubernetes/kind-cluster.yaml, then
    kind load docker-image for each lab image. Needs Docker and kind.
    """
    from rich.markup import escape

    from kernel_helpers import kind

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("cluster up", total=None)

        def show(line: str) -> None:
            bar.console.print(f"[dim]{escape(line)}[/]" if not line.startswith("✓")
                              else escape(line))
            bar.update(task, description=escape(line[:90]))

        status = kind.up(log=show)
    _cluster_table(status)
    if status.ok:
        console.print(f"[green]The cluster is ready.[/] kubectl now uses the context "
                      f"{kind.LAB_CONTEXT}; `dockyard cluster status` shows it again.")
    raise typer.Exit(0 if status.ok else 1)


@cluster_app.command("down")
def cluster_down() -> None:
    """Delete the lab's kind cluster ('dockyard') and nothing else."""
    from kernel_helpers import kind

    with console.status("kind delete cluster --name dockyard …"):
        deleted = kind.down(log=lambda line: console.print(line, markup=False))
    if deleted:
        console.print(f"Deleted the kind cluster '{kind.CLUSTER_NAME}'.")


@cluster_app.command("status")
def cluster_status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    context: ContextOption = None,
) -> None:
    """Nodes, roles, readiness and lab images: exit 0 when every node is Ready.

    Exits 2 when kind is missing for the lab's own cluster, 1 for any other problem.
    """
    from kernel_helpers import kind

    _use_context(context)
    status = kind.status()
    if as_json:
        _print_json(status.to_dict())
    else:
        _cluster_table(status)
    raise typer.Exit(0 if status.ok else (2 if status.kind_missing else 1))


def main() -> None:
    """Entry point: run the app and turn known faults into one readable line."""
    import checkers
    from kernel_helpers import engine as eng
    from kernel_helpers import images, kind, progress
    from kernel_helpers import kubernetes as kube

    known = (checkers.UnknownExercise, checkers.UnknownLab, checkers.RunError,
             eng.EngineUnavailable, images.ImageBuildError, progress.ProgressUnavailable,
             kube.ClusterUnavailable, KeyError)
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (Exit, kind.KindError) as problem:
        errors.print(f"dockyard: {problem}", markup=False, highlight=False)
        sys.exit(problem.code)
    except kube.ClusterFault as problem:
        errors.print(f"dockyard: {problem}", markup=False, highlight=False)
        sys.exit(1)
    except known as problem:
        message = problem.args[0] if isinstance(problem, KeyError) else problem
        errors.print(f"dockyard: {message}", markup=False, highlight=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        errors.print("dockyard: interrupted")
        sys.exit(130)
    except Exception as problem:  # the last line of defence: still no traceback
        import click

        if isinstance(problem, click.ClickException):
            problem.show()
            sys.exit(problem.exit_code)
        if os.environ.get("DOCKYARD_DEBUG"):
            raise
        errors.print(f"dockyard: unexpected {type(problem).__name__}: {problem} "
                     "(set DOCKYARD_DEBUG=1 for details)", markup=False, highlight=False)
        sys.exit(3)
