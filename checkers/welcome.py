"""Lab 00 — welcome: how checks, hints and progress work.

Its one exercise is static (a file in the workspace), so it grades on Binder too,
where there is no Docker engine.
"""

from __future__ import annotations

from pathlib import Path

from checkers import CheckContext, Exercise, SolveContext, Text
from kernel_helpers import workspace

LAB = "00-welcome"
HELLO_FILE = "hello-dockyard.txt"
HELLO_WORD = "ready"


def hello_path() -> Path:
    return workspace.root() / HELLO_FILE


first_check = Exercise(
    id="welcome.first-check",
    lab=LAB,
    needs_engine=False,
    static=True,
    subchecks={"exists": 1, "ready": 1},
    text=Text(
        title="Make a check pass",
        task=(
            f"Create a file `{HELLO_FILE}` in your Dockyard workspace whose text contains the "
            f"word `{HELLO_WORD}`, then press Check. Try the hint button first if you like."
        ),
        subchecks={
            "exists": f"{HELLO_FILE} exists in your workspace",
            "ready": f"it contains the word '{HELLO_WORD}'",
        },
        hints=(
            "The notebook prints where your workspace is; the file goes right there.",
            "In a notebook, a cell that starts with `%%writefile PATH` saves the rest of the "
            "cell to PATH.",
        ),
        reasons={
            "exists": "There is no {path} yet.",
            "ready": "{path} exists but does not contain the word '" + HELLO_WORD + "'.",
        },
    ),
)


@first_check.check
def _check_first_check(ctx: CheckContext) -> None:
    path = hello_path()
    ctx.evidence["path"] = str(path)
    if not ctx.result("exists", path.is_file(), "exists", path=path):
        raise ctx.blocked_by("exists")
    text = path.read_text(encoding="utf-8", errors="replace")
    ctx.evidence["size"] = len(text)
    ctx.result("ready", HELLO_WORD in text.lower(), "ready", path=path)


@first_check.solve
def _solve_first_check(ctx: SolveContext) -> None:
    path = hello_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"I am {HELLO_WORD} to sail.\n", encoding="utf-8")


@first_check.cleanup
def _cleanup_first_check(ctx: SolveContext) -> None:
    # The file is the exercise's own artefact, at a path the lab chose.
    hello_path().unlink(missing_ok=True)
