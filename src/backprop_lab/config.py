"""The config schema and the checks that turn a composed Hydra config into Settings.

Every user-facing config error is a ConfigError naming the key, the value and what is
allowed. Checks run before any compute and before any MLflow run is opened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .objectives import OBJECTIVES as OBJECTIVE_CLASSES
from .paths import project_root

DTYPES = ("float32", "float64")
DATASETS = ("gaussian", "spiral", "iris", "digits", "csv")
OBJECTIVES = ("output_mean", "half_sum_squares", "mse", "softmax_cross_entropy")
OPTIMIZERS = ("sgd", "adam")

# The dataset keys each dataset reads, beyond the ones all share; any other is refused.
DATASET_KEYS = {
    "gaussian": ("n_samples", "n_features"),
    "spiral": ("n_samples", "n_classes"),
    "iris": (),
    "digits": (),
    "csv": ("path", "features", "target"),
}
DATASET_SHARED = ("name", "standardize", "validation_fraction")
# Likewise for optimisers.
OPTIMIZER_KEYS = {"sgd": ("momentum",), "adam": ("beta1", "beta2", "epsilon")}
OPTIMIZER_SHARED = ("name", "lr", "steps", "batch_size", "decay")


class ConfigError(ValueError):
    """A config value that cannot run; the message says which key and how to fix it."""


@dataclass(frozen=True)
class DatasetSettings:
    name: str = "gaussian"
    n_samples: int = 50
    n_features: int = 3
    n_classes: int = 3
    path: str | None = None
    features: tuple[str, ...] | None = None
    target: str | None = None
    standardize: bool = False
    validation_fraction: float = 0.0


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
    batch_size: int | None = None
    decay: float = 0.0
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7


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


def _positive_float(key: str, value: Any, example: str = "0.1") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{key}={value!r} is not a number; use a positive finite number, e.g. {example}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"{key}={value!r} is not allowed; use a positive finite number, e.g. {example}"
        )
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


def _fraction(key: str, value: Any) -> float:
    """A number in [0, 1): momentum, Adam's betas, the share of rows held out."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r} is not allowed; use a number from 0 up to (not "
                          "including) 1")
    return float(value)


def _non_negative_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise ConfigError(f"{key}={value!r} is not allowed; use a finite number >= 0, e.g. 0")
    return float(value)


def _names(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{key}={value!r} must be null or a list of column names, "
                          f"e.g. {key}=[x1,x2]")
    return tuple(value)


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


def _only_keys_of(raw, group: str, name: str, own: dict, shared: tuple[str, ...]) -> None:
    """Refuse keys of `group` that the chosen `name` does not read (they would do nothing)."""
    allowed = set(own[name]) | set(shared)
    for key in sorted(set(raw.get(group, {})) - allowed):
        users = [n for n, keys in own.items() if key in keys]
        raise ConfigError(f"{group}.{key} does nothing with {group}.name={name!r} (it is read "
                          f"by {', '.join(users) or 'no choice'}); remove it")


def _csv_path(value: Any) -> str:
    """dataset.path as an absolute path to an existing file; relative to the project root."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"dataset.path={value!r}: dataset=csv needs the CSV file's path, "
                          "e.g. dataset.path=data/table.csv")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = project_root() / path
    if not path.is_file():
        raise ConfigError(f"dataset.path={value!r}: no file at {path}; give an existing CSV "
                          "file (relative paths start at the project root)")
    return str(path)


def _dataset(raw) -> DatasetSettings:
    s = _section(raw, "dataset", DatasetSettings)
    name = _choice("dataset.name", s["name"], DATASETS)
    _only_keys_of(raw, "dataset", name, DATASET_KEYS, DATASET_SHARED)
    if name == "spiral" and _int("dataset.n_samples", s["n_samples"], 1) < s["n_classes"]:
        raise ConfigError(f"dataset.n_samples={s['n_samples']} gives some of the "
                          f"dataset.n_classes={s['n_classes']} spiral arms no points; use at "
                          "least one sample per class")
    return DatasetSettings(
        name=name,
        n_samples=_int("dataset.n_samples", s["n_samples"], 1),
        n_features=_int("dataset.n_features", s["n_features"], 1),
        n_classes=_int("dataset.n_classes", s["n_classes"], 2),
        path=_csv_path(s["path"]) if name == "csv" else s["path"],
        features=_names("dataset.features", s["features"]),
        target=_optional_str("dataset.target", s["target"]),
        standardize=_bool("dataset.standardize", s["standardize"]),
        validation_fraction=_fraction("dataset.validation_fraction", s["validation_fraction"]),
    )


def _model(raw) -> ModelSettings:
    s = _section(raw, "model", ModelSettings)
    return ModelSettings(
        widths=_widths("model.widths", s["widths"]),
        init_scale=_positive_float("model.init_scale", s["init_scale"], "0.01"),
        bias=_bool("model.bias", s["bias"]),
    )


def _optimizer(raw) -> OptimizerSettings:
    s = _section(raw, "optimizer", OptimizerSettings)
    name = _choice("optimizer.name", s["name"], OPTIMIZERS)
    _only_keys_of(raw, "optimizer", name, OPTIMIZER_KEYS, OPTIMIZER_SHARED)
    batch = s["batch_size"]
    return OptimizerSettings(
        name=name,
        lr=_positive_float("optimizer.lr", s["lr"]),
        steps=_int("optimizer.steps", s["steps"], 1),
        batch_size=None if batch is None else _int("optimizer.batch_size", batch, 1),
        decay=_non_negative_float("optimizer.decay", s["decay"]),
        momentum=_fraction("optimizer.momentum", s["momentum"]),
        beta1=_fraction("optimizer.beta1", s["beta1"]),
        beta2=_fraction("optimizer.beta2", s["beta2"]),
        epsilon=_positive_float("optimizer.epsilon", s["epsilon"], "1e-8"),
    )


def _labels_match(dataset: DatasetSettings, objective: str) -> None:
    """Refuse an objective that needs targets the dataset cannot give it."""
    needs = OBJECTIVE_CLASSES[objective].needs
    if needs is None:
        return
    what = "class labels" if needs == "classes" else "numeric targets"
    if dataset.name == "gaussian":
        raise ConfigError(
            f"objective.name={objective!r} needs {what}, but dataset gaussian has none; use "
            "a labelled dataset (dataset=spiral, iris, digits, or csv with dataset.target) or "
            "an unlabelled objective (output_mean, half_sum_squares)")
    if dataset.name == "csv" and dataset.target is None:
        raise ConfigError(f"objective.name={objective!r} needs {what}; set dataset.target to "
                          "the CSV column that holds them")
    if needs == "values" and dataset.name in ("spiral", "iris", "digits"):
        raise ConfigError(f"objective.name={objective!r} regresses onto numbers, but dataset "
                          f"{dataset.name} has class labels; use objective=softmax_cross_entropy")


def _gradcheck(raw) -> GradcheckSettings:
    s = _section(raw, "gradcheck", GradcheckSettings)
    return GradcheckSettings(
        enabled=_bool("gradcheck.enabled", s["enabled"]),
        tolerance=_positive_float("gradcheck.tolerance", s["tolerance"], "1e-6"),
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
        allowed = ", ".join(sorted(TOP_LEVEL - {"hydra", "experiment"}))
        raise ConfigError(f"unknown key {unknown[0]}; top-level keys are: {allowed}")
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
    _labels_match(settings.dataset, settings.objective.name)
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
