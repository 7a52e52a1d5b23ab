"""Table helpers of the renderers: one nesting level per chart, run labels said once."""

from __future__ import annotations

from joulemeter.meter.run import Window
from joulemeter.reports.render._tables import one_level, run_label, window_groups
from tests.test_compare import make_run


def _paths(groups) -> list[str]:
    return [g.path for g in groups]


def test_a_chart_level_never_holds_a_window_and_its_children() -> None:
    nested = [Window("train", "train", 0.0, 50.0, {"cpu": 50.0}),
              Window("epoch-1", "train/epoch-1", 0.0, 25.0, {"cpu": 25.0}),
              Window("epoch-2", "train/epoch-2", 25.0, 50.0, {"cpu": 25.0}),
              Window("eval", "eval", 50.0, 60.0, {"cpu": 10.0})]
    level, parent = one_level(window_groups(make_run("a" * 32, "r", windows=nested)))
    assert _paths(level) == ["train", "eval"] and parent is None
    assert sum(sum(g.energy_j.values()) for g in level) == 60.0  # counted once


def test_a_lone_top_window_is_opened_to_its_children() -> None:
    trials = [Window("inference", "inference", 0.0, 30.0)] + [
        Window(f"trial-{i}", f"inference/trial-{i}", 10.0 * i, 10.0 * i + 10) for i in range(3)
    ]
    level, parent = one_level(window_groups(make_run("b" * 32, "r", windows=trials)))
    assert _paths(level) == ["inference/trial-0", "inference/trial-1", "inference/trial-2"]
    assert parent == "inference"


def test_run_label_says_the_variant_once() -> None:
    assert run_label("digits-mlp/full", "full") == "digits-mlp/full"
    assert run_label("int8", "int8") == "int8"
    assert run_label("sweep-3", "int8") == "sweep-3 (int8)"
    assert run_label("plain", None) == "plain"
