"""Notebook widgets: a Check panel per exercise and a progress bar per lab.

Both are ipywidgets boxes that also carry ``text/html`` and ``text/plain`` in their
MIME bundle, so where no widget frontend runs (nbclient, a console, a static
render) the student still sees the verdict, hints and points as plain output.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

if TYPE_CHECKING:
    from checkers import Exercise, Verdict

_bars: dict[str, list[LabProgress]] = {}


class LabProgress(w.HBox):
    """A lab's progress bar: points earned of points available."""

    def __init__(self, lab: str, earned: int, total: int) -> None:
        self.lab = lab
        self.bar = w.IntProgress(value=earned, min=0, max=max(total, 1),
                                 description=lab, bar_style="info",
                                 layout=w.Layout(width="60%"))
        self.label = w.Label()
        super().__init__([self.bar, self.label])
        self.update(earned, total)
        _bars.setdefault(lab, []).append(self)

    def update(self, earned: int, total: int) -> None:
        self.bar.max = max(total, 1)
        self.bar.value = earned
        self.bar.bar_style = "success" if total and earned >= total else "info"
        self.label.value = f"{earned}/{total} points"

    def text(self) -> str:
        return f"{self.lab}: {self.label.value}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text()
        bundle["text/html"] = f"<div><b>{html.escape(self.lab)}</b>: {self.label.value}</div>"
        return bundle


def refresh_progress(lab: str, earned: int, total: int) -> None:
    for bar in _bars.get(lab, []):
        bar.update(earned, total)


class CheckWidget(w.VBox):
    """``Check`` button, verdict with a ✓/✗ and reason per sub-check, hints one at a time."""

    def __init__(
        self,
        exercise: Exercise,
        run_check: Callable[[], Verdict],
        verdict: Verdict | None = None,
    ) -> None:
        self.exercise = exercise
        self.text = exercise.localized()
        self._run_check = run_check
        self.verdict = verdict
        self.hints_shown = 0
        self.header = w.HTML(
            f"<b>{html.escape(self.text.title)}</b> "
            f"<small>({exercise.points} points · <code>{exercise.id}</code>)</small>"
            f"<div>{html.escape(self.text.task)}</div>"
        )
        self.button = w.Button(description="Check", button_style="primary", icon="check")
        self.hint_button = w.Button(description=self._hint_label(), icon="lightbulb-o")
        self.result = w.HTML()
        self.hints = w.HTML()
        self.button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.next_hint())
        super().__init__([self.header, w.HBox([self.button, self.hint_button]),
                          self.result, self.hints])
        if verdict is not None:
            self.show(verdict)

    def _hint_label(self) -> str:
        total = len(self.text.hints)
        if self.hints_shown >= total:
            return "No more hints"
        return f"Hint {self.hints_shown + 1} of {total}"

    def check(self) -> Verdict:
        """Press the Check button from code (the ``click()`` twin of ``on_click``)."""
        self.button.disabled = True
        self.button.description = "Checking…"
        try:
            verdict = self._run_check()
        finally:
            self.button.disabled = False
            self.button.description = "Check"
        self.show(verdict)
        return verdict

    def show(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.result.value = verdict._repr_html_()

    def next_hint(self) -> str | None:
        if self.hints_shown >= len(self.text.hints):
            return None
        hint = self.text.hints[self.hints_shown]
        self.hints_shown += 1
        self.hints.value = "".join(
            f"<div>💡 {html.escape(h)}</div>" for h in self.text.hints[: self.hints_shown]
        )
        self.hint_button.description = self._hint_label()
        self.hint_button.disabled = self.hints_shown >= len(self.text.hints)
        return hint

    def text_report(self) -> str:
        lines = [f"{self.text.title} ({self.exercise.points} points, {self.exercise.id})",
                 self.text.task]
        if self.verdict is not None:
            lines.append(str(self.verdict))
        lines.append(f"Hints: {len(self.text.hints)} (dy.hint('{self.exercise.id}') shows one)")
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text_report()
        verdict_html = self.verdict._repr_html_() if self.verdict is not None else ""
        bundle["text/html"] = self.header.value + verdict_html
        return bundle
