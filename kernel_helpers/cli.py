"""The ``dockyard`` command for students and instructors.

Every command turns faults into one clear line and an exit code (0 ok, 1 a check or
selftest failed, 2 bad input or no engine), never a traceback; set
``DOCKYARD_DEBUG=1`` to see one anyway.
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
console = Console()
errors = Console(stderr=True)


class Exit(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the environment: engine, version, context, cgroups, memory, disk, images."""
    from kernel_helpers import diagnostics as doc

    report = doc.run()
    if as_json:
        _print_json(report.to_dict())
    else:
        table = Table("", "check", "finding", show_header=False, box=None)
        for f in report.findings:
            mark = "[green]✓[/]" if f.ok else ("[red]✗[/]" if f.required else "[yellow]![/]")
            detail = f.detail + (f"\n[dim]→ {f.fix}[/]" if f.fix and not f.ok else "")
            table.add_row(mark, f.name, detail)
        console.print(table)
        console.print("The Docker labs can run here." if report.ok
                      else "[red]The Docker labs cannot run yet.[/]")
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
) -> None:
    """Grade one exercise from live state: exit 0 on pass, 1 otherwise."""
    import checkers

    verdict = checkers.check(exercise_id, source="cli")
    if as_json:
        _print_json(verdict.to_dict())
    else:
        console.print(str(verdict), highlight=False, markup=False)
    raise typer.Exit(0 if verdict.passed else 1)


@app.command()
def solve(exercise_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Apply an exercise's reference solution (to catch up)."""
    import checkers

    with console.status(f"solving {exercise_id}…"):
        checkers.solve(exercise_id)
    console.print(f"Solved {exercise_id}. `dockyard check {exercise_id}` shows the result.")


@app.command()
def reset(
    lab_name: Annotated[str | None, typer.Argument(metavar="[LAB]")] = None,
    images: Annotated[bool, typer.Option("--images", help="also remove lab images")] = False,
) -> None:
    """Remove what the lab created or graded; a student's own resources are never touched."""
    import checkers

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
) -> None:
    """For every exercise: cleanup → setup → check must fail → solve → check must pass → cleanup."""
    import checkers
    from checkers._core import runner

    items = checkers.all_exercises(lab_name)
    missing = runner.engine_missing_for(items)
    if missing:
        raise Exit(f"selftest needs a Docker engine for these labs: {missing}")
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
    if as_json:
        _print_json([vars(r) for r in rows])
    else:
        table = Table("exercise", "before solve", "after solve", "seconds", "result",
                      title="Dockyard selftest")
        for r in rows:
            result = "[green]ok[/]" if r.ok else f"[red]FAIL[/] {r.problem}"
            table.add_row(r.exercise, r.before, r.after, f"{r.seconds:.1f}", result)
        console.print(table)
        console.print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)


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


def main() -> None:
    """Entry point: run the app and turn known faults into one readable line."""
    import checkers
    from kernel_helpers import engine as eng
    from kernel_helpers import images, progress

    known = (checkers.UnknownExercise, checkers.UnknownLab, checkers.RunError,
             eng.EngineUnavailable, images.ImageBuildError, progress.ProgressUnavailable,
             KeyError)
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exit as problem:
        errors.print(f"dockyard: {problem}", markup=False, highlight=False)
        sys.exit(problem.code)
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
