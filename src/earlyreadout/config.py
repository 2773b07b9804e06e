"""Run configuration: YAML file + `key=value` overrides, validated against the declared parameters.

A run config has the sections `method`, `data`, `model` (each a `name` plus that entry's declared
parameters), `train` (the loop's settings) and `out` (the run directory). Every problem is reported at
once, each naming the key and what it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from earlyreadout.data import DATASETS
from earlyreadout.distributed import PRECISIONS
from earlyreadout.errors import ConfigError, UserError, did_you_mean
from earlyreadout.io import read_yaml_file
from earlyreadout.methods import METHODS
from earlyreadout.models import MODELS, canonical_model
from earlyreadout.models.stages import ModelLayers
from earlyreadout.params import Param, resolve

SELECTION = ("auto", "worst_group", "adjusted", "average", "worst_class")

def setting(default: Any, help: str, **constraints: Any) -> Any:
    """A dataclass field declared once: its default, and the `Param` (help, constraint) that validation, the CLI
    flags and the search read."""
    return field(default=default, metadata={"param": Param(default, help, **constraints)})


@dataclass(frozen=True)
class TrainSettings:
    """The `train` section: the loop's settings, typed, each declared once here."""

    epochs: int = setting(10, "training epochs", low=1)
    batch_size: int = setting(64, "training batch size (global, over all processes)", low=1)
    eval_batch_size: int | None = setting(None, "evaluation batch size; null = chosen from the input size (about "
                                          "64 MB of input per batch, 16 to 512 examples)", low=1, nullable=True,
                                          kind=int, affects_results=False)
    seed: int = setting(0, "training seed (initialisation, batch order)", low=0)
    select_by: str = setting("auto", "validation metric that selects the checkpoint; auto = worst_group when val "
                             "has group labels, else average", choices=SELECTION)
    device: str = setting("auto", "cpu, cuda, cuda:N, or auto (cuda when available)", affects_results=False)
    num_workers: int = setting(0, "data-loading worker processes for lazily loaded datasets", low=0,
                               affects_results=False)
    precision: str = setting("fp32", "fp32, or bf16 / fp16 mixed precision (torch.autocast for every training step "
                             "and evaluation; fp16 with a gradient scaler)", choices=PRECISIONS)
    channels_last: bool = setting(False, "channels-last memory format for 4-D image inputs and the network (faster "
                                  "convolutions on GPUs)")
    compile: bool = setting(False, "torch.compile the network (a slower first epoch, faster steps after; not for "
                            "methods that read layers through hooks)")
    progress: bool | None = setting(None, "progress bars; null = only on an interactive terminal outside CI",
                                    nullable=True, kind=bool, affects_results=False)


TRAIN_OPTIONS: dict[str, Param] = {f.name: f.metadata["param"] for f in fields(TrainSettings)}

OUT = Param("runs/latest", "run directory (stored absolute, so a run resumes from any working directory)",
            path=True)
SECTIONS = ("method", "data", "model", "train", "out", "search")  # `search` is read by search.py only
DEFAULTS = {"method": "erm", "data": "colored-digits"}


@dataclass(frozen=True)
class Entry:
    """A registry entry a run uses (its method, dataset or model) with that entry's resolved settings."""

    name: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.settings}


@dataclass(frozen=True)
class RunConfig:
    """A validated run (every value resolved, defaults filled in): what trains, on what, how, and where."""

    method: Entry
    data: Entry
    model: Entry
    train: TrainSettings
    out: str
    notes: tuple[str, ...] = field(default=(), compare=False)  # said once in the run's log, not stored

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method.to_dict(), "data": self.data.to_dict(), "model": self.model.to_dict(),
                "train": asdict(self.train), "out": self.out}


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ('a.b', value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"cannot read override {text!r}: write it as key=value, e.g. method.lr=0.01")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_values(raw: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `raw` with each dotted key set to its value as given (typed flags: no YAML re-parsing);
    a section given as a bare name becomes {name: ...}."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for dotted, value in values.items():
        keys = dotted.split(".")
        node = out
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {"name": node[k]} if isinstance(node.get(k), str) else {}
            node = node[k]
        node[keys[-1]] = value
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted `key=value` (value parsed as YAML) in a copy of `raw`; later ones win."""
    for text in overrides:
        raw = set_values(raw, dict([parse_override(text)]))
    return raw


def layered(raw: dict[str, Any], values: Mapping[str, Any] | None = None,
            overrides: list[str] | None = None) -> dict[str, Any]:
    """`raw` with typed `values` (flags) set, then `key=value` overrides applied, which win."""
    return apply_overrides(set_values(raw, values or {}), overrides or [])


def raw_config(path: str | Path | None = None, overrides: list[str] | None = None,
               values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The unvalidated config: an optional YAML file, then typed `values` (flags), then `key=value`
    overrides, which win."""
    return layered(read_yaml(path) if path else {}, values, overrides)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The raw sections of a YAML config file (one clear error when it is missing or not a mapping)."""
    return read_yaml_file(path, "config file", "pass the path of a YAML config (sections: method, data, model, "
                          "train, out)")


def _section(raw: dict[str, Any], key: str, problems: list[str]) -> tuple[str | None, dict[str, Any]]:
    value = raw.get(key, {})
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        problems.append(f"section {key!r} must be a mapping or a name, got {value!r}")
        return None, {}
    rest = {k: v for k, v in value.items() if k != "name"}
    return value.get("name", DEFAULTS.get(key)), rest


def _lookup(registry: Any, name: str | None, problems: list[str]) -> Any:
    try:
        return registry.get(name)
    except UserError as e:
        problems.append(str(e))
        return None


def default_model(data_cls: Any, model_given: dict[str, Any]) -> tuple[str, list[str]]:
    """(model, notes) for a run that names no model: the dataset's default, or its built-in fallback where the
    default needs local pretrained files that were not given; the notes say how to get the published setting."""
    model, published = data_cls.default_model, getattr(data_cls, "published_model", None)
    options = MODELS.get(model).options
    fallback = getattr(data_cls, "fallback_model", None)
    if fallback and "path" in options and model_given.get("path") is None:
        return fallback, [(f"no model.path for {model!r} was given, so the built-in {fallback!r} trains instead; "
                          f"the published setting uses {published}")]
    if published and "weights" in options and model_given.get("weights") is None:
        return model, [(f"no pretrained weights were given, so the model trains from scratch; the published "
                       f"setting uses {published}")]
    return model, []


def build_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw nested config; raise ConfigError listing every problem."""
    problems: list[str] = []
    for key in raw:
        if key not in SECTIONS:
            problems.append(f"unknown config section {key!r}{did_you_mean(key, SECTIONS)}; "
                            f"sections: {', '.join(SECTIONS)}")
    method, method_given = _section(raw, "method", problems)
    data, data_given = _section(raw, "data", problems)
    model, model_given = _section(raw, "model", problems)
    try:
        model, model_given = canonical_model(model, model_given)
    except UserError as e:
        problems.append(str(e))
    method_cls = _lookup(METHODS, method, problems)
    data_cls = _lookup(DATASETS, data, problems)
    notes: list[str] = []
    if model is None and data_cls is not None:
        model, notes = default_model(data_cls, model_given)
    model_cls = _lookup(MODELS, model, problems) if model is not None else None
    method_hp: dict[str, Any] = {}
    data_options: dict[str, Any] = {}
    model_options: dict[str, Any] = {}
    if method_cls is not None:
        method_hp, p = resolve(method_cls.hparams, method_given, f"method {method!r}")
        problems += p
    if data_cls is not None:
        data_options, p = resolve(data_cls.options, data_given, f"dataset {data!r}")
        problems += p
    if model_cls is not None:
        model_options, p = resolve(model_cls.options, model_given, f"model {model!r}")
        problems += p
        if method_cls is not None:
            problems += ModelLayers.declared(model, model_cls.stages).problems(method_cls.hparams, method_hp,
                                                                               f"method {method!r}")
    train_given = raw.get("train", {}) or {}
    if not isinstance(train_given, dict):
        problems.append(f"section 'train' must be a mapping, got {train_given!r}")
        train_given = {}
    train, p = resolve(TRAIN_OPTIONS, train_given, "train")
    problems += p
    out, p = resolve({"out": OUT}, {"out": raw.get("out", OUT.default)}, "the run config")
    problems += p
    if train.get("compile") and method_cls is not None and any(s.layer for s in method_cls.hparams.values()):
        problems.append(f"train.compile: method {method!r} reads layers through forward hooks, which a compiled "
                        "network does not run; set train.compile=false")
    if problems:
        raise ConfigError(problems)
    return RunConfig(Entry(method, method_hp), Entry(data, data_options), Entry(model, model_options),  # type: ignore[arg-type]
                     TrainSettings(**train), out["out"], tuple(notes))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                values: Mapping[str, Any] | None = None) -> RunConfig:
    """A validated config from an optional YAML file, typed `values` and `key=value` overrides (which win)."""
    return build_config(raw_config(path, overrides, values))


def declared_params(config: dict[str, Any]) -> dict[str, Param]:
    """{dotted key: its Param} for the sections of a (raw or resolved) config whose entries are known."""
    found = {f"train.{k}": p for k, p in TRAIN_OPTIONS.items()}
    for section, registry, attr in (("method", METHODS, "hparams"), ("data", DATASETS, "options"),
                                    ("model", MODELS, "options")):
        value = config.get(section)
        name = value.get("name") if isinstance(value, dict) else value
        if isinstance(name, str) and name in registry:
            found.update({f"{section}.{k}": p for k, p in getattr(registry.get(name), attr).items()})
    return found


def result_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A config flattened to dotted keys (`method.lr`), less `out` and every setting declared
    `affects_results=False`: what must match for two runs to compute the same thing."""
    params = declared_params(config)
    flat = {}
    for section, value in config.items():
        if section == "out":
            continue
        for key, v in (value.items() if isinstance(value, dict) else [("", value)]):
            dotted = f"{section}.{key}" if key else section
            if dotted not in params or params[dotted].affects_results:
                flat[dotted] = v
    return flat
