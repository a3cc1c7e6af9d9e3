"""config.hash names what decides a result, and nothing that only says where it is recorded."""

from backprop_lab.config import validate
from backprop_lab.identity import config_hash

BASE = {"seed": 3, "optimizer": {"lr": 0.1, "steps": 5}, "model": {"widths": [4, 2]}}


def with_(**groups):
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in BASE.items()}
    for group, values in groups.items():
        if isinstance(values, dict):
            raw[group] = {**raw.get(group, {}), **values}
        else:
            raw[group] = values
    return config_hash(validate(raw))


def test_hash_ignores_where_and_how_a_run_is_recorded():
    base = with_()
    assert len(base) == 16 and int(base, 16) >= 0
    assert with_(tracking={"uri": "sqlite:///elsewhere.db", "experiment": "other",
                           "run_name": "renamed", "parent_run_id": "abc",
                           "log_every": 10, "log_arrays": False}) == base


def test_hash_sees_every_setting_that_changes_numbers():
    base = with_()
    changed = [with_(seed=4), with_(optimizer={"lr": 0.2}), with_(optimizer={"steps": 6}),
               with_(model={"widths": [4, 3]}), with_(compute={"dtype": "float32"}),
               with_(compute={"blas_threads": 2}), with_(dataset={"n_samples": 51})]
    assert base not in changed and len(set(changed)) == len(changed)


def test_hash_reads_values_not_spelling():
    assert with_(optimizer={"lr": 1}) == with_(optimizer={"lr": 1.0})
    assert with_(dataset={"n_features": 3}) == with_()  # a default written out
