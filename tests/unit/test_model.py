"""The exercise model: verdict rendering, declaration guards, and translations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import checkers
from checkers._core import registry
from checkers._core import text as texts
from checkers._core.context import image_missing_message


def make_verdict(**overrides: Any) -> checkers.Verdict:
    fields: dict[str, Any] = {
        "exercise": "containers.first-container",
        "lab": "01-containers-vs-vms",
        "title": "Run <your> first container",
        "status": checkers.FAIL,
        "subchecks": [
            checkers.SubResult("exists", "a container exists", 1, True),
            checkers.SubResult("greeting", "it greets", 2, False, "printed '<b>hi</b>' & left"),
        ],
        "evidence": {"containers": {"dy-hello": {"id": "abc"}}},
        "checked_at": "2024-01-01T00:00:00+00:00",
        "duration_ms": 12.5,
        "message": "",
        "notes": ["container abc is older than this lab"],
    }
    fields.update(overrides)
    return checkers.Verdict(**fields)


def test_verdict_text() -> None:
    verdict = make_verdict()
    assert (verdict.score, verdict.max_score, verdict.passed) == (1, 3, False)
    lines = str(verdict).splitlines()
    assert lines[0] == "containers.first-container: Run <your> first container"
    assert "✗ not yet — 1/3 points" in lines[1]
    assert "  ✓ a container exists (1 pt)" in lines
    assert "      → printed '<b>hi</b>' & left" in lines
    assert lines[-1] == "  note: container abc is older than this lab"


@pytest.mark.parametrize(
    ("status", "headline"),
    [
        (checkers.PASS, "✓ passed"),
        (checkers.NEEDS_ENGINE, "needs a Docker engine"),
        (checkers.TIMEOUT, "timed out"),
        (checkers.ERROR, "could not check"),
    ],
)
def test_verdict_headline_per_status(status: str, headline: str) -> None:
    verdict = make_verdict(status=status, message="why it happened")
    assert headline in verdict.headline()
    assert "  why it happened" in str(verdict).splitlines()


def test_verdict_html_escapes_everything_it_shows() -> None:
    rendered = make_verdict(message="<script>alert(1)</script>")._repr_html_()
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered
    assert "Run &lt;your&gt; first container" in rendered
    assert "printed &#x27;&lt;b&gt;hi&lt;/b&gt;&#x27; &amp; left" in rendered
    assert rendered.count("<li>") == 2
    assert "container abc is older than this lab" in rendered


def test_verdict_html_hides_reasons_of_passed_steps() -> None:
    verdict = make_verdict(
        status=checkers.PASS,
        subchecks=[checkers.SubResult("exists", "a container exists", 1, True, "stale")],
        notes=[],
    )
    rendered = verdict._repr_html_()
    assert "stale" not in rendered and "#1a7f37" in rendered


def test_verdict_to_dict_round_trips_through_json() -> None:
    data = json.loads(json.dumps(make_verdict().to_dict()))
    assert data["score"] == 1 and data["max_score"] == 3
    assert data["subchecks"][1]["reason"].startswith("printed")


def test_exercise_refuses_text_that_does_not_match_its_subchecks() -> None:
    text = checkers.Text("T", "task", {"a": "step a", "extra": "step x"}, ("a hint",))
    with pytest.raises(ValueError, match=r"differ on \['b', 'extra'\]"):
        checkers.Exercise("welcome.bad-keys", "00-welcome", {"a": 1, "b": 1}, text)
    assert "welcome.bad-keys" not in registry._exercises


def test_exercise_refuses_no_hints() -> None:
    text = checkers.Text("T", "task", {"a": "step a"}, ())
    with pytest.raises(ValueError, match="at least one hint"):
        checkers.Exercise("welcome.no-hints", "00-welcome", {"a": 1}, text)
    assert "welcome.no-hints" not in registry._exercises


def test_exercise_refuses_an_unknown_lab(make_exercise: Any) -> None:
    with pytest.raises(ValueError, match="unknown lab '07-nowhere'"):
        make_exercise("nowhere.thing", lab="07-nowhere")


def test_points_are_the_sum_of_subchecks(make_exercise: Any) -> None:
    exercise = make_exercise("welcome.sum", subchecks={"a": 2, "b": 3})
    assert exercise.points == 5
    assert checkers.get("welcome.sum") is exercise
    assert [s["points"] for s in exercise.describe()["subchecks"]] == [2, 3]


def test_reason_falls_back_and_never_raises() -> None:
    text = checkers.Text("T", "task", {"a": "a"}, ("h",), reasons={"bad": "needs {missing}"})
    assert texts.reason(text, "bad", other=1) == "needs {missing}"
    assert "dy-x" in texts.reason(text, "missing_container", name="dy-x")
    assert texts.reason(text, "no-such-key") == "no-such-key"


def test_image_missing_message_explains_without_pulling() -> None:
    lab_image = image_missing_message("dockyard/api:1")
    assert "dockyard images build" in lab_image and "no registry" in lab_image
    other = image_missing_message("alpine:3.20")
    assert "will not pull" in other and "docker pull alpine:3.20" in other
    assert "docker load" in other


# -- translations ---------------------------------------------------------------------------


@pytest.fixture
def locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty locale folder, Korean selected, and a clean translation cache around the test."""
    folder = tmp_path / "locale"
    folder.mkdir()
    monkeypatch.setattr(texts, "LOCALE_DIR", folder)
    monkeypatch.setenv("DOCKYARD_LANG", "ko_KR")
    texts._catalog.cache_clear()
    yield folder
    texts._catalog.cache_clear()


def test_translation_overrides_and_falls_back(locale: Path) -> None:
    (locale / "ko.json").write_text(json.dumps({
        "welcome.first-check": {
            "title": "체크를 통과시키기",
            "subchecks": {"exists": "작업 공간에 hello-dockyard.txt가 있다"},
            "reasons": {"exists": "{path} 파일이 아직 없습니다."},
        },
    }), encoding="utf-8")
    exercise = checkers.get("welcome.first-check")
    korean = exercise.localized()
    assert korean.title == "체크를 통과시키기"
    assert korean.task == exercise.text.task, "a missing key stays English"
    assert korean.hints == exercise.text.hints
    assert korean.subchecks["ready"] == exercise.text.subchecks["ready"]
    assert exercise.describe()["title"] == "체크를 통과시키기"

    verdict = checkers.check("welcome.first-check", record=False)  # no file in the workspace
    assert verdict.title == "체크를 통과시키기"
    first, second = verdict.subchecks
    assert first.title.startswith("작업 공간") and first.reason.endswith("파일이 아직 없습니다.")
    assert second.reason.startswith("Not checked yet"), "common reasons stay English"


def test_english_ignores_translation_files(locale: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (locale / "en.json").write_text(json.dumps({"welcome.first-check": {"title": "X"}}))
    monkeypatch.setenv("DOCKYARD_LANG", "en")
    assert checkers.get("welcome.first-check").localized().title == "Make a check pass"


@pytest.mark.parametrize(
    "content",
    [
        "{ this is not json",
        json.dumps(["a", "list"]),
        json.dumps({"welcome.first-check": "just a string"}),
        json.dumps({"welcome.first-check": {"title": 5, "hints": "not a list", "subchecks": []}}),
        json.dumps({"welcome.first-check": {"reasons": {"exists": "{no_such_field}"}}}),
    ],
)
def test_a_broken_translation_breaks_nothing(locale: Path, content: str) -> None:
    (locale / "ko.json").write_text(content, encoding="utf-8")
    exercise = checkers.get("welcome.first-check")
    text = exercise.localized()
    assert text.title == "Make a check pass" and text.hints == exercise.text.hints
    verdict = checkers.check("welcome.first-check", record=False)
    assert verdict.status == checkers.FAIL
    assert verdict.subchecks[0].reason  # a reason, even if the template could not be filled


def test_an_unreadable_translation_breaks_nothing(locale: Path) -> None:
    (locale / "ko.json").write_bytes(b"\xff\xfe\x00 not utf-8")
    assert checkers.get("welcome.first-check").localized().title == "Make a check pass"
