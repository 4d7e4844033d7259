"""The side-by-side page of ``evaluate --models ... --report``: which images come first."""
from __future__ import annotations

from toonmatte.commands.comparison import worst_first
from toonmatte.commands.evaluate import Scores


def scores(values: dict[str, tuple[float, float]]) -> Scores:
    result = Scores()
    result.per_image = {key: {"pixel_accuracy": pa, "mae": mae} for key, (pa, mae) in values.items()}
    return result


def test_images_come_by_the_lowest_pixel_accuracy_of_any_model():
    results = {"toonout": scores({"a": (0.99, 0.01), "b": (0.50, 0.20), "c": (0.95, 0.02), "d": (0.95, 0.01)}),
               "fine-tune": scores({"a": (0.40, 0.30), "b": (0.98, 0.01), "c": (0.95, 0.05), "d": (0.97, 0.01)})}
    assert worst_first(results) == ["a", "b", "c", "d"]  # c and d tie on PA: the higher MAE first
    results["fine-tune"].per_image.pop("a")
    assert worst_first(results) == ["b", "c", "d"]  # only images every model scored
