"""Datasets: shapes and dtypes, CSV errors, the seeded split, standardisation, mini-batches."""

from types import SimpleNamespace

import numpy as np
import pytest

from backprop_lab import data
from backprop_lab.data import Batches, DataError, Dataset


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gaussian_and_spiral_have_the_asked_shapes_and_dtypes(dtype):
    gaussian = data.gaussian(7, 3, rng=rng(), dtype=dtype)
    assert gaussian.inputs.shape == (7, 3) and gaussian.inputs.dtype == dtype
    assert gaussian.targets is None and gaussian.labels is None

    spiral = data.spiral(100, 3, rng=rng(), dtype=dtype)
    assert spiral.inputs.shape == (100, 2) and spiral.inputs.dtype == dtype
    assert spiral.targets.shape == (100,) and spiral.targets.dtype == np.int64
    assert np.bincount(spiral.targets).tolist() == [34, 33, 33]  # N mod K extra go first
    assert spiral.labels == "classes" and spiral.n_outputs == 3
    # Every point lies within the unit disc, none at the origin (a ReLU kink).
    radius = np.linalg.norm(spiral.inputs, axis=1)
    assert radius.max() <= 1 + 1e-6 and radius.min() > 0


def test_spiral_is_drawn_from_the_given_generator_only():
    first = data.spiral(60, 2, rng=rng(5), dtype=np.float64)
    again = data.spiral(60, 2, rng=rng(5), dtype=np.float64)
    other = data.spiral(60, 2, rng=rng(6), dtype=np.float64)
    np.testing.assert_array_equal(first.inputs, again.inputs)
    assert not np.array_equal(first.inputs, other.inputs)


@pytest.mark.parametrize("builder, shape, n_classes", [
    (data.iris, (150, 4), 3),
    (data.digits, (1797, 64), 10),
])
def test_shipped_datasets_load_without_a_download(builder, shape, n_classes):
    dataset = builder(dtype=np.float32)
    assert dataset.inputs.shape == shape and dataset.inputs.dtype == np.float32
    assert dataset.targets.shape == (shape[0],) and dataset.targets.dtype == np.int64
    assert sorted(set(dataset.targets.tolist())) == list(range(n_classes))
    assert len(dataset.classes) == n_classes


def write(tmp_path, text, name="table.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_a_text_target_gives_classes_in_sorted_order(tmp_path):
    path = write(tmp_path, "a,b,kind\n1,2,y\n3,4,x\n5,6,y\n")
    dataset = data.csv(path, None, "kind", dtype=np.float64)
    np.testing.assert_array_equal(dataset.inputs, [[1, 2], [3, 4], [5, 6]])
    assert dataset.classes == ("x", "y")
    assert dataset.targets.tolist() == [1, 0, 1]
    assert dataset.name == "table" and str(path.resolve()) in dataset.source


def test_csv_with_a_numeric_target_gives_regression_values(tmp_path):
    path = write(tmp_path, "a,b,c,t\n1,2,9,0.5\n3,4,9,1.5\n")
    dataset = data.csv(path, ["b", "a"], "t", dtype=np.float32)
    np.testing.assert_array_equal(dataset.inputs, [[2, 1], [4, 3]])  # in the order asked
    assert dataset.inputs.dtype == np.float32
    assert dataset.labels == "values" and dataset.targets.shape == (2, 1)
    # Whole numbers can be read as classes instead, for a classification objective.
    whole = data.csv(write(tmp_path, "a,t\n1,2\n2,7\n3,2\n"), None, "t", dtype=np.float64)
    classes = data.as_classes(whole)
    assert classes.targets.tolist() == [0, 1, 0] and classes.classes == ("2", "7")


@pytest.mark.parametrize("text, features, target, message", [
    ("a,b\n1,2\n", ["a", "zz"], None, r"no column 'zz'"),
    ("a,b\n1,2\n", None, "t", r"no column 't'"),
    ("a,b\n1,2\n3,oops\n", None, None, r"column 'b', row 2: 'oops' is not a number"),
    ("a,b\n1,2\n3,\n5,6\n", None, None, r"column 'b', row 2 .*is empty"),
    ("a,t\n1,x\n2,\n", None, "t", r"column 't', row 2 .*is empty"),
    ("a,t\n1,2\n", ["a", "t"], "t", r"'t' is both the target and a feature"),
])
def test_csv_errors_name_the_column_and_row(tmp_path, text, features, target, message):
    with pytest.raises(DataError, match=message):
        data.csv(write(tmp_path, text), features, target, dtype=np.float64)


def test_csv_errors_for_a_missing_file_and_fractional_class_labels(tmp_path):
    with pytest.raises(DataError, match="no CSV file at"):
        data.csv(tmp_path / "absent.csv", None, None, dtype=np.float64)
    fractional = data.csv(write(tmp_path, "a,t\n1,2\n2,2.5\n"), None, "t", dtype=np.float64)
    with pytest.raises(DataError, match=r"target row 2 is 2.5"):
        data.as_classes(fractional)


def test_load_refuses_text_classes_for_a_regression_objective(tmp_path):
    options = SimpleNamespace(name="csv", path=write(tmp_path, "a,t\n1,x\n"), features=None,
                              target="t")
    with pytest.raises(DataError, match="mse objective cannot regress"):
        data.load(options, "values", rng=rng(), dtype=np.float64)


def labelled(n):
    inputs = np.arange(2.0 * n).reshape(n, 2)
    return Dataset("t", inputs, "test", targets=np.arange(n), classes=tuple("ab"))


def test_split_is_seeded_disjoint_and_complete():
    dataset = labelled(10)
    train, val = data.split(dataset, 0.3, rng=rng(1))
    train_again, val_again = data.split(dataset, 0.3, rng=rng(1))
    assert (train.shape, val.shape) == ((7, 2), (3, 2))
    np.testing.assert_array_equal(val.inputs, val_again.inputs)
    rows = sorted(train.targets.tolist() + val.targets.tolist())
    assert rows == list(range(10))  # every row exactly once
    # Inputs and targets moved together.
    np.testing.assert_array_equal(train.inputs[:, 0], 2.0 * train.targets)
    assert data.split(dataset, 0.0, rng=rng())[1] is None
    with pytest.raises(DataError, match="validation_fraction"):
        data.split(labelled(2), 0.9, rng=rng())


def test_standardize_uses_training_statistics_only():
    train = Dataset("t", np.array([[1.0, 5.0], [3.0, 5.0]]), "test")
    val = Dataset("t", np.array([[5.0, 7.0]]), "test")
    train_s, val_s = data.standardize(train, val)
    # Feature 0: mean 2, std 1. Feature 1 is constant in training: shifted, not scaled.
    np.testing.assert_allclose(train_s.inputs, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(val_s.inputs, [[3.0, 2.0]])


def test_whole_batches_are_the_dataset_itself_without_draws():
    dataset = labelled(5)
    generator = rng()
    state = generator.bit_generator.state
    inputs, targets = next(Batches(dataset, None, generator))
    assert inputs is dataset.inputs and targets is dataset.targets
    assert generator.bit_generator.state == state


def test_mini_batches_cover_each_row_once_per_pass_and_reshuffle():
    dataset = labelled(10)
    batches = Batches(dataset, 4, rng(3))
    first_pass = [next(batches) for _ in range(3)]
    assert [len(t) for _, t in first_pass] == [4, 4, 2]  # the last batch of a pass is short
    seen = np.concatenate([t for _, t in first_pass])
    assert sorted(seen.tolist()) == list(range(10))
    for inputs, targets in first_pass:
        np.testing.assert_array_equal(inputs[:, 0], 2.0 * targets)
    second = np.concatenate([next(batches)[1] for _ in range(3)])
    assert sorted(second.tolist()) == list(range(10)) and second.tolist() != seen.tolist()
    again = Batches(dataset, 4, rng(3))
    np.testing.assert_array_equal(np.concatenate([next(again)[1] for _ in range(3)]), seen)
