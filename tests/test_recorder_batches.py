"""Metrics sent in the background while training goes on all reach the store by finish()."""

from __future__ import annotations

import pytest

from backprop_lab import tracking

pytestmark = pytest.mark.slow


def test_every_value_sent_in_background_batches_is_in_the_store(store_uri, experiment_name):
    client, experiment_id = tracking.open_experiment(store_uri, experiment_name)
    run_id = client.create_run(experiment_id).info.run_id
    recorder = tracking.MlflowRecorder(client, run_id, chunk=100)
    steps = 130  # 130 steps x 3 values: three full batches in the background, 90 left over
    for step in range(steps):
        recorder.metrics(step, {"train/loss": 1.0 / (step + 1), "a": float(step), "b": -step})
    recorder.finish("FINISHED")

    history = client.get_metric_history(run_id, "a")
    assert sorted((m.step, m.value) for m in history) == [(s, float(s)) for s in range(steps)]
    assert len(client.get_metric_history(run_id, "b")) == steps
    assert client.get_run(run_id).info.status == "FINISHED"
