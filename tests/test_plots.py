"""The pictures of a run, drawn from its own record: curves kept by the recorder, the ledger."""

import struct

import pytest
from mlflow import MlflowClient

from backprop_lab import plots
from backprop_lab.cli import execute, readable_name
from backprop_lab.config import to_plain, validate
from backprop_lab.paths import project_root
from backprop_lab.runner import Diverged, MemoryRecorder, train
from backprop_lab.tracking import MlflowRecorder, open_experiment

RUN_PICTURES = {"loss_curve.png", "gradient_norms.png", "dead_relu.png", "shapes.png"}


def trained(compose, *overrides):
    recorder = MemoryRecorder()
    train(validate(compose("optimizer.steps=6", "gradcheck.enabled=false", *overrides)), recorder)
    return recorder


def png_size(path):
    """(width, height) read from the PNG header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_products_are_read_off_the_ledger_with_their_shapes(compose):
    recorder = trained(compose, "model.widths=[8,4]", "dataset.n_samples=20")
    found = {(p.layer, p.kind): p for p in plots.products(recorder.shape_entries)}
    assert set(found) == {("layer1", "forward"), ("layer1", "dweights"),
                          ("layer2", "forward"), ("layer2", "dweights"),
                          ("layer2", "dinputs")}  # the first layer needs no dinputs
    forward = found["layer1", "forward"]
    assert forward.names == ("inputs", "weights", "preactivation")
    assert (forward.left, forward.right, forward.result) == ((20, 3), (3, 8), (20, 8))
    gradient = found["layer2", "dweights"]
    assert gradient.names == ("inputs.T", "drelu", "dweights")
    assert (gradient.left, gradient.right, gradient.result) == ((8, 20), (20, 4), (8, 4))
    back = found["layer2", "dinputs"]
    assert (back.left, back.right, back.result) == ((20, 4), (4, 8), (20, 8))
    for p in found.values():
        assert p.left[1] == p.right[0] and p.result == (p.left[0], p.right[1])


def test_a_linear_output_layer_multiplies_dvalues_directly(compose):
    recorder = trained(compose, "dataset=iris", "objective=softmax_cross_entropy",
                       "model.widths=[5]")
    found = {(p.layer, p.kind): p for p in plots.products(recorder.shape_entries)}
    output = found["layer2", "forward"]
    assert output.names == ("inputs", "weights", "output")
    assert output.right == (5, 3) and output.result[1] == 3  # three iris species
    assert found["layer2", "dweights"].names == ("inputs.T", "dvalues", "dweights")
    assert found["layer2", "dinputs"].names == ("dvalues", "weights.T", "dinputs")
    assert found["layer1", "dweights"].names == ("inputs.T", "drelu", "dweights")


def test_the_shape_diagram_has_a_row_per_layer_and_a_column_per_product(compose, tmp_path):
    one = trained(compose, "model.widths=[4]").shape_entries
    three = trained(compose, "model.widths=[6,4,2]").shape_entries
    w1, h1 = png_size(plots.shape_diagram(one, tmp_path / "one.png", "one layer"))
    w3, h3 = png_size(plots.shape_diagram(three, tmp_path / "three.png", "three layers"))
    assert w3 > w1  # a dinputs column appears once a layer has a layer below it
    assert h3 > 2.5 * h1 - 100  # one row of panels per layer


def test_a_deep_stack_draws_its_first_and_last_layers_only(compose, tmp_path):
    eight = trained(compose, f"model.widths=[{','.join(['3'] * 8)}]").shape_entries
    forty = trained(compose, f"model.widths=[{','.join(['3'] * 40)}]").shape_entries
    _, h8 = png_size(plots.shape_diagram(eight, tmp_path / "eight.png", "eight"))
    _, h40 = png_size(plots.shape_diagram(forty, tmp_path / "forty.png", "forty"))
    assert h8 <= h40 <= h8 + 40  # rows for 8 layers, and one line saying which were left out


def test_run_figures_draws_every_picture_the_record_allows(compose, tmp_path):
    recorder = trained(compose, "model.widths=[8,4]")
    drawn = plots.run_figures(recorder.history, recorder.shape_entries, tmp_path, "title")
    assert {p.name for p in drawn} == RUN_PICTURES
    for path in drawn:
        width, height = png_size(path)
        assert width >= 400 and height >= 300
    assert plots.run_figures({}, [], tmp_path / "none", "nothing recorded") == []


def test_a_diverging_run_still_gets_its_pictures_and_stays_failed(
    compose, store_uri, experiment_name
):
    cfg = compose(f"tracking.uri={store_uri}", f"tracking.experiment={experiment_name}",
                  "objective=half_sum_squares", "optimizer.lr=50", "model.widths=[4]",
                  "model.init_scale=1", "gradcheck.enabled=false", "tracking.log_arrays=false")
    with pytest.raises(Diverged):
        execute(validate(cfg), to_plain(cfg), project_root(), run_name="diverges")
    client = MlflowClient(tracking_uri=store_uri)
    run = client.search_runs([client.get_experiment_by_name(experiment_name).experiment_id])[0]
    assert run.info.status == "FAILED"
    listed = client.list_artifacts(run.info.run_id, "plots")
    assert {a.path.split("/")[-1] for a in listed} == RUN_PICTURES


def test_curves_with_infinities_and_huge_values_still_draw(tmp_path):
    points = [(0, 1e-300), (1, 1e150), (2, 1e307), (3, float("inf")), (4, float("nan"))]
    path = plots.loss_curve(points, tmp_path / "loss.png", "diverged")
    assert png_size(path) == (600, 400)
    path = plots.gradient_norms({"grad/layer1.dweights/norm": points}, tmp_path / "g.png", "g")
    assert png_size(path) == (600, 400)


def test_the_mlflow_recorder_keeps_only_the_curves_the_pictures_draw(store_uri, experiment_name):
    client, experiment_id = open_experiment(store_uri, experiment_name)
    run_id = client.create_run(experiment_id).info.run_id
    recorder = MlflowRecorder(client, run_id)
    for step in range(3):
        recorder.metrics(step, {"train/loss": 1.0 / (step + 1), "train/output_mean": 0.5,
                                "grad/layer1.dweights/norm": 2.0, "grad/layer1.dweights/max": 1.0,
                                "param/layer1.weights/norm": 3.0,
                                "relu/layer1/dead_fraction": 0.25 * step})
    assert set(recorder.curves) == {"train/loss", "grad/layer1.dweights/norm",
                                    "relu/layer1/dead_fraction"}
    assert recorder.losses == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert recorder.curves["relu/layer1/dead_fraction"][-1] == (2, 0.5)
    recorder.finish("FINISHED")
    logged = client.get_run(run_id).data.metrics
    assert len(logged) == 6  # every metric still reaches MLflow, kept or not


def test_a_recorded_run_carries_its_pictures(compose, store_uri, experiment_name):
    cfg = compose(f"tracking.uri={store_uri}", f"tracking.experiment={experiment_name}",
                  "model.widths=[5,3]", "optimizer.steps=5")
    outcome = execute(validate(cfg), to_plain(cfg), project_root(), run_name="pictures")
    listed = MlflowClient(tracking_uri=store_uri).list_artifacts(outcome.run_id, "plots")
    assert {a.path.split("/")[-1] for a in listed} == RUN_PICTURES


EXCLUDED = {"experiment", "launcher", "tracking.uri", "tracking.parent_run_id"}


@pytest.mark.parametrize("experiment, overrides, expected", [
    (None, [], "defaults"),
    ("founding", [], "founding"),
    ("lr_sweep", ["optimizer.lr=0.01", "experiment=lr_sweep"], "lr_sweep lr=0.01"),
    (None, ["model.widths=[8,4]", "optimizer.steps=20"], "widths=[8,4] steps=20"),
    (None, ["objective=half_sum_squares", "dataset.name=gaussian", "+seed=3"],
     "objective=half_sum_squares dataset.name=gaussian seed=3"),
    (None, ["tracking.uri=sqlite:///x.db", "tracking.parent_run_id='abc'", "hydra.verbose=true",
            "optimizer.lr=0.1"], "lr=0.1"),
])
def test_run_names_say_what_distinguishes_the_run(experiment, overrides, expected):
    assert readable_name(experiment, overrides, EXCLUDED) == expected
