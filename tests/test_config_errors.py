"""Bad config values are refused before any run opens: one line naming key, value and fix.

Most cases go in-process through the door's `task` with a composed config; a few run the
real command to prove the exit code and that no traceback reaches the user.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from backprop_lab import cli, overrides
from backprop_lab.config import ConfigError, validate
from backprop_lab.runner import build

ROOT = Path(__file__).resolve().parents[1]


def refusal(caplog) -> str:
    """The one error line the door logged."""
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    return record.getMessage()


def composed(*args: str, conf: Path = ROOT / "conf"):
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name="config", overrides=list(args))


# (override, words the message must contain)
BAD_VALUES = [
    ("dataset.n_samples=0", ["dataset.n_samples=0", ">= 1"]),
    ("dataset.n_features=-3", ["dataset.n_features=-3", ">= 1"]),
    ("model.widths=[]", ["model.widths=[]", "non-empty list"]),
    ("model.widths=[4,0]", ["model.widths[1]=0", ">= 1"]),
    ("model.widths=[2.5]", ["model.widths[0]=2.5", "whole number"]),
    ("optimizer.lr=0", ["optimizer.lr=0", "positive finite number"]),
    ("optimizer.lr=-1", ["optimizer.lr=-1", "positive finite number"]),
    ("optimizer.lr=abc", ["optimizer.lr='abc'", "not a number"]),
    ("optimizer.lr=nan", ["optimizer.lr=nan", "positive finite number"]),
    ("optimizer.lr=inf", ["optimizer.lr=inf", "positive finite number"]),
    ("optimizer.steps=0", ["optimizer.steps=0", ">= 1"]),
    ("seed=-1", ["seed=-1", ">= 0"]),
    ("seed=1.5", ["seed=1.5", "whole number"]),
    ("objective.name=nope", ["objective.name='nope'", "output_mean"]),
    ("dataset.name=nope", ["dataset.name='nope'", "gaussian"]),
    ("+optimizer.lrr=0.1", ["optimizer.lrr", "lr"]),
]


@pytest.mark.parametrize("override,words", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_exits_2_with_one_line_and_opens_no_store(override, words, tmp_path, caplog):
    db = tmp_path / "mlflow.db"
    cfg = composed(override, f"tracking.uri=sqlite:///{db}")
    with pytest.raises(SystemExit) as exit_info:
        cli.run_from_config(cfg)
    err = refusal(caplog)
    assert exit_info.value.code == cli.EXIT_USER_ERROR
    assert err.startswith("config error: ") and "\n" not in err
    for word in words:
        assert word in err
    assert not db.exists()  # refused before the store was even created


# Refused by the override check before Hydra composes: (argv, words the message must contain)
BAD_OVERRIDES = [
    (["optimizer.lrr=0.1"], ["optimizer.lrr=0.1", "did you mean optimizer.lr?", "lr, momentum"]),
    (["sed=3"], ["sed=3", "did you mean seed?"]),
    (["objective=nope"], ["objective=nope", "half_sum_squares, mse, output_mean"]),
    (["dataset=nope"], ["dataset=nope", "gaussian"]),
    (["-m", "objective=output_mean,nope"], ["objective=nope"]),
]


@pytest.mark.parametrize("argv,words", BAD_OVERRIDES, ids=[" ".join(b[0]) for b in BAD_OVERRIDES])
def test_unknown_key_or_option_is_named_with_what_exists(argv, words):
    with pytest.raises(ConfigError) as error:
        overrides.check(argv, ROOT / "conf")
    for word in words:
        assert word in str(error.value)


def test_override_check_lets_good_and_hydra_words_through():
    overrides.check(["-m", "optimizer.lr=0.1,0.2", "objective=half_sum_squares",
                     "hydra/job_logging=console", "hydra.verbose=true", "+extra=1",
                     "~tracking.run_name", "--cfg", "job", "experiment=founding",
                     "model.widths=[8,4]", "seed=0"], ROOT / "conf")


def test_lr_written_1e_minus_3_is_a_number_on_the_command_line_and_in_an_experiment(tmp_path):
    assert validate(composed("optimizer.lr=1e-3")).optimizer.lr == pytest.approx(1e-3)

    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)  # follows conf/experiment into a real folder
    (conf / "experiment" / "small_lr.yaml").write_text(
        "# @package _global_\noptimizer:\n  lr: 1e-3\n  steps: 5\n"
    )
    cfg = composed("experiment=small_lr", conf=conf)
    assert isinstance(OmegaConf.to_container(cfg)["optimizer"]["lr"], float)
    assert validate(cfg).optimizer.lr == pytest.approx(1e-3)


def test_seed_zero_is_a_seed():
    zero_a, zero_b, one = (validate(composed(f"seed={s}")) for s in (0, 0, 1))
    assert zero_a.seed == 0
    data_a, data_b, data_one = (build(s).train.inputs for s in (zero_a, zero_b, one))
    assert (data_a == data_b).all()  # seed 0 gives the same data every time...
    assert not (data_a == data_one).all()  # ...and not what another seed gives


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backprop_lab", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_real_command_refuses_bad_values_without_traceback(tmp_path):
    db = tmp_path / "mlflow.db"
    for bad in ("optimizer.lrr=0.1", "optimizer.lr=abc"):
        done = _cli(bad, f"tracking.uri=sqlite:///{db}")
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert "Traceback" not in said
        (line,) = [x for x in said.splitlines() if "error" in x]
        assert "config error:" in line and "optimizer.lr" in line
    assert not db.exists()


def test_debug_switch_raises_the_error_itself(monkeypatch, tmp_path):
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ConfigError, match="optimizer.lr='abc'"):  # a traceback, not an exit
        cli.run_from_config(composed("optimizer.lr=abc", f"tracking.uri=sqlite:///{tmp_path}/m.db"))
