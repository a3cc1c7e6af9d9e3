"""The config schema and the checks that turn a composed Hydra config into Settings.

Every user-facing config error is a ConfigError naming the key, the value and what is
allowed. Checks run before any compute and before any MLflow run is opened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

DTYPES = ("float32", "float64")
DATASETS = ("gaussian",)
OBJECTIVES = ("output_mean", "half_sum_squares")
OPTIMIZERS = ("sgd",)


class ConfigError(ValueError):
    """A config value that cannot run; the message says which key and how to fix it."""


@dataclass(frozen=True)
class DatasetSettings:
    name: str = "gaussian"
    n_samples: int = 50
    n_features: int = 3


@dataclass(frozen=True)
class ModelSettings:
    widths: tuple[int, ...] = (2,)
    init_scale: float = 0.01
    bias: bool = True


@dataclass(frozen=True)
class ObjectiveSettings:
    name: str = "output_mean"


@dataclass(frozen=True)
class OptimizerSettings:
    name: str = "sgd"
    lr: float = 0.1
    steps: int = 200


@dataclass(frozen=True)
class GradcheckSettings:
    enabled: bool = True
    tolerance: float = 1e-6
    max_entries: int = 20
    max_samples: int = 64


@dataclass(frozen=True)
class ComputeSettings:
    dtype: str = "float64"
    blas_threads: int | None = 1  # pinned: products differ in their last bits across counts


@dataclass(frozen=True)
class TrackingSettings:
    uri: str | None = None
    experiment: str = "backprop-lab"
    run_name: str | None = None
    log_every: int = 1
    log_arrays: bool = True
    parent_run_id: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated."""

    seed: int = 0
    dataset: DatasetSettings = DatasetSettings()
    model: ModelSettings = ModelSettings()
    objective: ObjectiveSettings = ObjectiveSettings()
    optimizer: OptimizerSettings = OptimizerSettings()
    gradcheck: GradcheckSettings = GradcheckSettings()
    compute: ComputeSettings = ComputeSettings()
    tracking: TrackingSettings = TrackingSettings()


# ---- checks of single values ---------------------------------------------------------------

def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} is not a whole number; use an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key}={value!r} is too small; use an integer >= {minimum}")
    return value


def _positive_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{key}={value!r} is not a number; use a positive finite number, e.g. 0.1"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}={value!r} is not allowed; use a positive finite number, e.g. 0.1")
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not a boolean; use true or false")
    return value


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is unknown; choose one of: {', '.join(allowed)}")
    return value


def _optional_str(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be text or null")
    return value


def _widths(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"{key}={value!r} must be a non-empty list of layer widths, e.g. {key}=[8,4]"
        )
    return tuple(_int(f"{key}[{i}]", w, 1) for i, w in enumerate(value))


# ---- checks of whole groups ----------------------------------------------------------------

def _section(raw: Mapping, name: str, schema: type) -> dict:
    """The group `name` of `raw` as a dict, refusing keys the schema does not know."""
    section = raw.get(name, {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"{name} must be a group of keys, got {section!r}")
    known = {f.name for f in fields(schema)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"unknown key {name}.{unknown[0]}; {name} takes: {', '.join(sorted(known))}"
        )
    defaults = {f.name: getattr(schema(), f.name) for f in fields(schema)}
    return {**defaults, **section}


def _dataset(raw) -> DatasetSettings:
    s = _section(raw, "dataset", DatasetSettings)
    return DatasetSettings(
        name=_choice("dataset.name", s["name"], DATASETS),
        n_samples=_int("dataset.n_samples", s["n_samples"], 1),
        n_features=_int("dataset.n_features", s["n_features"], 1),
    )


def _model(raw) -> ModelSettings:
    s = _section(raw, "model", ModelSettings)
    return ModelSettings(
        widths=_widths("model.widths", s["widths"]),
        init_scale=_positive_float("model.init_scale", s["init_scale"]),
        bias=_bool("model.bias", s["bias"]),
    )


def _optimizer(raw) -> OptimizerSettings:
    s = _section(raw, "optimizer", OptimizerSettings)
    return OptimizerSettings(
        name=_choice("optimizer.name", s["name"], OPTIMIZERS),
        lr=_positive_float("optimizer.lr", s["lr"]),
        steps=_int("optimizer.steps", s["steps"], 1),
    )


def _gradcheck(raw) -> GradcheckSettings:
    s = _section(raw, "gradcheck", GradcheckSettings)
    return GradcheckSettings(
        enabled=_bool("gradcheck.enabled", s["enabled"]),
        tolerance=_positive_float("gradcheck.tolerance", s["tolerance"]),
        max_entries=_int("gradcheck.max_entries", s["max_entries"], 1),
        max_samples=_int("gradcheck.max_samples", s["max_samples"], 1),
    )


def _compute(raw) -> ComputeSettings:
    s = _section(raw, "compute", ComputeSettings)
    threads = s["blas_threads"]
    return ComputeSettings(
        dtype=_choice("compute.dtype", s["dtype"], DTYPES),
        blas_threads=None if threads is None else _int("compute.blas_threads", threads, 1),
    )


def _tracking(raw) -> TrackingSettings:
    s = _section(raw, "tracking", TrackingSettings)
    experiment = s["experiment"]
    if not isinstance(experiment, str) or not experiment.strip():
        raise ConfigError(f"tracking.experiment={experiment!r} must be a non-empty name")
    return TrackingSettings(
        uri=_optional_str("tracking.uri", s["uri"]),
        experiment=experiment,
        run_name=_optional_str("tracking.run_name", s["run_name"]),
        log_every=_int("tracking.log_every", s["log_every"], 1),
        log_arrays=_bool("tracking.log_arrays", s["log_arrays"]),
        parent_run_id=_optional_str("tracking.parent_run_id", s["parent_run_id"]),
    )


TOP_LEVEL = {f.name for f in fields(Settings)} | {"experiment", "hydra"}


def to_plain(cfg: DictConfig | Mapping) -> dict:
    """A resolved, plain-dict copy of a Hydra config (without its `hydra` node)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in cfg.items() if k != "hydra"}


def validate(cfg: DictConfig | Mapping) -> Settings:
    """Check every value of a composed config and return typed Settings, or raise ConfigError."""
    raw = to_plain(cfg)
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; top-level keys are: {sorted(TOP_LEVEL)}")
    seed = raw.get("seed", 0)
    settings = Settings(
        seed=_int("seed", seed, 0),
        dataset=_dataset(raw),
        model=_model(raw),
        objective=ObjectiveSettings(
            name=_choice("objective.name", _section(raw, "objective", ObjectiveSettings)["name"],
                         OBJECTIVES)
        ),
        optimizer=_optimizer(raw),
        gradcheck=_gradcheck(raw),
        compute=_compute(raw),
        tracking=_tracking(raw),
    )
    return settings


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: the dotted keys MLflow params are logged under."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
