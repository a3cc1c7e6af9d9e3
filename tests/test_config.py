"""Configs compose with Hydra's compose API and validate into Settings."""

from pathlib import Path

import pytest

from backprop_lab.config import ConfigError, flatten, validate

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["dataset", "model", "objective", "optimizer", "tracking"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# Options that cannot run alone, with the overrides that complete them.
COMPANIONS = {
    ("dataset", "csv"): ["dataset.path=data/sine.csv"],
    ("objective", "mse"): ["dataset=csv", "dataset.path=data/sine.csv", "dataset.target=y"],
    ("objective", "softmax_cross_entropy"): ["dataset=iris"],
}


@pytest.mark.parametrize(
    "group, option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_of_every_group_composes_and_validates(compose, group, option):
    cfg = compose(f"{group}={option}", *COMPANIONS.get((group, option), []))
    settings = validate(cfg)
    assert settings.seed == cfg.seed


def test_defaults_are_the_founding_experiment(compose):
    settings = validate(compose())
    assert (settings.dataset.n_samples, settings.dataset.n_features) == (50, 3)
    assert settings.model.widths == (2,)
    assert settings.model.init_scale == 0.01
    assert settings.objective.name == "output_mean"
    assert settings.optimizer.name == "sgd"


def test_command_line_overrides_reach_settings(compose):
    settings = validate(compose("model.widths=[8,4]", "optimizer.lr=1e-3", "seed=0"))
    assert settings.model.widths == (8, 4)
    assert settings.optimizer.lr == pytest.approx(1e-3)
    assert settings.seed == 0


def test_a_bad_value_names_the_key(compose):
    with pytest.raises(ConfigError, match=r"optimizer\.lr"):
        validate(compose("optimizer.lr=-1"))


def test_flatten_gives_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": 3}) == {"a.b": 1, "a.c.d": [2], "e": 3}


def test_refusals_suggest_values_in_the_key_s_own_range(compose):
    with pytest.raises(ConfigError, match=r"gradcheck\.tolerance=0 .* e\.g\. 1e-6"):
        validate(compose("gradcheck.tolerance=0"))
    with pytest.raises(ConfigError, match=r"^unknown key foo; top-level keys are: compute, "):
        validate(compose("+foo=1"))
