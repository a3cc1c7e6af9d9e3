"""The rules that decide whether two metric histories match, without any store."""

import math

from backprop_lab.comparison import compare_histories, provenance_changes


def history(**curves):
    return {name.replace("__", "/"): list(enumerate(values)) for name, values in curves.items()}


def test_equal_histories_are_identical_bit_for_bit():
    original = history(train__loss=[1.0, 0.5, 0.25], grad__norm=[3.0, 2.0, math.nan])
    verdict = compare_histories(original, history(train__loss=[1.0, 0.5, 0.25],
                                                  grad__norm=[3.0, 2.0, math.nan]))
    assert verdict.identical and verdict.n_inexact == 0
    assert (verdict.n_metrics, verdict.n_points) == (2, 6)
    assert verdict.describe().startswith("IDENTICAL: 2 metrics, 6 points, bit for bit")


def test_first_difference_is_the_earliest_step_then_the_metric_name():
    original = history(b=[1.0, 2.0, 3.0], a=[1.0, 2.0, 3.0])
    changed = history(b=[1.0, 2.5, 3.0], a=[1.0, 2.0, 3.0 + 1e-15])
    verdict = compare_histories(original, changed)
    assert not verdict.identical
    assert (verdict.first.step, verdict.first.metric) == (1, "b")
    assert verdict.first.amount == 0.5
    assert [(d.step, d.metric) for d in verdict.differences] == [(1, "b"), (2, "a")]
    assert "first at step 1, metric b: original 2.0, reproduced 2.5" in verdict.describe()


def test_tolerance_accepts_last_bit_differences_but_not_larger_ones():
    original = history(loss=[1.0, 2.0])
    close = history(loss=[1.0, 2.0 + 4e-16])
    within = compare_histories(original, close, tolerance=1e-12)
    assert within.identical and within.n_inexact == 1
    assert "within tolerance" in within.describe()
    assert not compare_histories(original, history(loss=[1.0, 2.1]), tolerance=1e-12).identical


def test_nan_against_a_number_and_missing_points_always_differ():
    nan_vs_number = compare_histories(history(x=[math.nan]), history(x=[1.0]), tolerance=1e9)
    assert not nan_vs_number.identical
    shorter = compare_histories(history(x=[1.0, 2.0, 3.0]), history(x=[1.0, 2.0]))
    assert (shorter.first.step, shorter.first.reproduced) == (2, None)
    assert "recorded only in the original" in shorter.describe()
    extra_metric = compare_histories(history(x=[1.0]), history(x=[1.0], y=[0.0]))
    assert extra_metric.first.metric == "y" and extra_metric.first.original is None


def test_a_point_logged_twice_at_one_step_is_compared_in_order():
    original = {"x": [(0, 1.0), (0, 2.0)]}
    assert compare_histories(original, {"x": [(0, 1.0), (0, 2.0)]}).identical
    assert not compare_histories(original, {"x": [(0, 1.0)]}).identical


def test_provenance_changes_name_each_fact_that_moved():
    original = {"git.commit": "abc", "git.dirty": "false", "numpy.version": "2.0.0",
                "blas.threads": "1", "compute.dtype": "float64"}
    now = {**original, "git.commit": "def", "blas.threads": "2"}
    assert provenance_changes(original, original) == []
    changes = provenance_changes(original, now)
    assert "git.commit: original abc, now def" in changes
    assert "blas.threads: original 1, now 2" in changes
    assert not any(c.startswith("numpy") for c in changes)
    dirty = provenance_changes({**original, "git.dirty": "true"}, {**original, "git.dirty": "true"})
    assert any("uncommitted changes" in c for c in dirty)
