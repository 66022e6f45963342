"""Lab 04's static Compose grader, and the Compose helpers it uses: no engine needed.

Each broken file fails exactly the rule it breaks, with a reason that names what is
wrong (the parser's message with line and column, the unknown key, the service
without a healthcheck...). The whole exercise also grades through the runner with
``DOCKER_HOST`` pointing nowhere, the way it does on Binder.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

import checkers
from checkers import multi_container as mc
from kernel_helpers import compose
from kernel_helpers import engine as eng

DEAD_SOCKET = "unix:///nonexistent.sock"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_SOCKET)
    monkeypatch.setattr(eng, "_cached", None)


def write(text: str) -> Path:
    path = mc.compose_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def grade(text: str) -> dict[str, mc.StaticResult]:
    results, _ = mc.grade_compose_file(write(text))
    return {r.key: r for r in results}


def reason(result: mc.StaticResult) -> str:
    return checkers._core.text.reason(mc.compose_file.text, result.reason_key, **result.fields)


def failing(text: str) -> dict[str, str]:
    return {k: reason(r) for k, r in grade(text).items() if not r.passed}


def test_the_reference_file_passes_every_rule() -> None:
    results = grade(mc.reference_compose(8088))
    assert list(results) == ["parses", "known-keys", "tiers", "healthchecks", "start-order",
                             "ports"]
    assert all(r.passed for r in results.values()), failing(mc.reference_compose(8088))


def test_a_missing_file_is_named() -> None:
    results, parsed = mc.grade_compose_file(mc.compose_path())
    assert parsed is None and [r.key for r in results] == ["parses"]
    assert str(mc.compose_path()) in reason(results[0])


def test_yaml_that_does_not_parse_quotes_the_parser_with_line_and_column() -> None:
    broken = mc.reference_compose(8088).replace("  api:\n", "  api:\n\tbroken: [\n", 1)
    failed = failing(broken)
    assert list(failed) == ["parses"]
    message = failed["parses"]
    assert "not valid YAML" in message and "line " in message and "column " in message
    # PyYAML's own words about the tab.
    assert "'\\t'" in message or "tab" in message.lower(), message


def test_a_top_level_list_is_not_a_compose_file() -> None:
    assert "mapping" in failing("- web\n- api\n")["parses"]


def test_an_unknown_key_is_named_with_a_guess() -> None:
    text = mc.reference_compose(8088).replace("    healthcheck:\n      test: [\"CMD\", \"redis",
                                               "    helthcheck:\n      test: [\"CMD\", \"redis")
    failed = failing(text)
    assert "known-keys" in failed
    assert "'helthcheck'" in failed["known-keys"] and "service 'db'" in failed["known-keys"]
    assert "did you mean 'healthcheck'" in failed["known-keys"]
    # The misspelling also leaves db without a healthcheck.
    assert "db" in failed["healthchecks"]


def test_an_unknown_top_level_key_is_named() -> None:
    failed = failing("servics:\n  web:\n    image: x\n")
    assert "'servics'" in failed["known-keys"] and "the top level" in failed["known-keys"]


def test_extension_keys_are_allowed() -> None:
    text = "x-common: &c\n  image: busybox\n" + mc.reference_compose(8088)
    assert not failing(text)


def test_a_missing_healthcheck_names_the_service() -> None:
    text = mc.reference_compose(8088).replace(
        '    healthcheck:\n      test: ["CMD", "python3", "/app/app.py", "health"]\n'
        "      interval: 2s\n      timeout: 5s\n      retries: 20\n", "")
    failed = failing(text)
    assert list(failed) == ["healthchecks"], failed
    assert failed["healthchecks"].startswith("api has no `healthcheck:`")


def test_depends_on_without_a_condition_fails_the_start_order() -> None:
    text = mc.reference_compose(8088).replace(
        "    depends_on:\n      api:\n        condition: service_healthy\n",
        "    depends_on:\n      - api\n")
    failed = failing(text)
    assert list(failed) == ["start-order"], failed
    assert "'web' lists 'api' in the short form" in failed["start-order"]
    assert "condition: service_healthy" in failed["start-order"]


def test_a_weaker_condition_is_named() -> None:
    text = mc.reference_compose(8088).replace(
        "      db:\n        condition: service_healthy",
        "      db:\n        condition: service_started")
    assert "'api' waits for 'db' with condition 'service_started'" in failing(text)["start-order"]


def test_missing_tiers_are_listed() -> None:
    failed = failing("services:\n  web:\n    image: dockyard/mc-web:1\n")
    assert "api, db" in failed["tiers"]


def test_a_service_needs_an_image_or_a_build() -> None:
    text = mc.reference_compose(8088).replace("    image: dockyard/mc-db:1\n", "")
    assert "db has neither" in failing(text)["tiers"]


def test_only_the_front_end_publishes_a_port_on_loopback() -> None:
    db_port = mc.reference_compose(8088).replace(
        "    image: dockyard/mc-db:1\n", "    image: dockyard/mc-db:1\n    ports: ['6379:6379']\n")
    assert "db publishes ports" in failing(db_port)["ports"]
    everywhere = mc.reference_compose(8088).replace('"127.0.0.1:8088:80"', '"8088:80"')
    assert "every address" in failing(everywhere)["ports"]
    none = mc.reference_compose(8088).replace('      - "127.0.0.1:8088:80"\n', "      - \"9000\"\n")
    assert "no port for its container port 80" in failing(none)["ports"]


@pytest.mark.parametrize(("item", "expected"), [
    ("127.0.0.1:8088:80", ("127.0.0.1", "8088", "80")),
    ("8088:80/tcp", ("", "8088", "80")),
    ("80", ("", "", "80")),
    ("[::1]:8088:80", ("::1", "8088", "80")),
    ({"target": 80, "published": 8088, "host_ip": "127.0.0.1"}, ("127.0.0.1", "8088", "80")),
])
def test_published_ports_reads_short_and_long_syntax(item: object, expected: tuple) -> None:
    [port] = compose.published_ports({"ports": [item]})
    assert (port.host_ip, port.published, port.target) == expected


def test_error_lines_skips_the_swarm_warning() -> None:
    text = ("The Docker Engine you're using is running in swarm mode.\n\n"
            "ERROR: for web  Cannot start service web: bind: address already in use\n"
            "Encountered errors while bringing up the project.\n")
    assert compose.error_lines(text) == (
        "ERROR: for web  Cannot start service web: bind: address already in use")


def test_the_whole_exercise_grades_without_an_engine(no_engine: None) -> None:
    verdict = checkers.check("multi-container.compose-file")
    assert verdict.status == checkers.FAIL and verdict.score == 0, str(verdict)
    write(mc.reference_compose(8088))
    verdict = checkers.check("multi-container.compose-file")
    assert verdict.status == checkers.PASS, str(verdict)


def test_the_stack_exercise_grades_its_file_first(no_engine: None) -> None:
    """A broken file is a plain 'not yet'; a good one leaves only the live part waiting."""
    write("services: [\n")
    verdict = checkers.check("multi-container.compose-up")
    assert verdict.status == checkers.FAIL, str(verdict)
    assert "Fix the Compose file first" in verdict.subchecks[0].reason
    write(mc.reference_compose(8088))
    verdict = checkers.check("multi-container.compose-up")
    assert verdict.status == checkers.NEEDS_ENGINE, str(verdict)
    assert verdict.subchecks[0].passed and verdict.score == 1


def test_compose_cli_detection_reports_a_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose, "_detected", {"cli": None})
    assert compose.command() == "docker compose"
    with pytest.raises(compose.ComposeUnavailable, match="docker-compose"):
        compose.require()
    legacy = compose.ComposeCLI(("/usr/bin/docker-compose",), "1.29.2")
    assert legacy.spelling == "docker-compose" and not legacy.supports_name_key
    plugin = compose.ComposeCLI(("/usr/bin/docker", "compose"), "v2.24.0")
    assert plugin.spelling == "docker compose" and plugin.supports_name_key


@pytest.mark.parametrize(("starter", "image"), [
    ("api/app.py", "mc-api/app.py"),
    ("web/default.conf", "mc-web/default.conf"),
])
def test_starter_files_match_what_the_images_contain(starter: str, image: str) -> None:
    assert filecmp.cmp(REPO / "labs/04-multi-container" / starter, REPO / "labs/images" / image,
                       shallow=False), f"labs/04-multi-container/{starter} drifted from its image"
