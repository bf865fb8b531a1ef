"""One description of a run: ``RunSpec`` (plugins, βs, seeds) and ``FitConfig`` (training settings).

The CLI, TOML configs, the store's provenance and sweeps all build and read these two frozen,
picklable dataclasses. Each FitConfig field is declared once, with its help text and whether it
is a *runtime* setting (device, threads, progress: they do not change results), so a run's
identity, the click options and the config keys are all derived from the declaration.
"""
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Optional

from .errors import SpecError
from .params import Param, int_range, param_from_annotation
from .spec import Spec, parse_spec

OPTIMIZERS = ("sgd", "adam", "adamw")
DIVERGENCE_FORMS = ("pairwise", "consensus")


def setting(default: Any, help: str, runtime: bool = False, minimum: float | None = None, above: float | None = None):
    """A training setting: its default, help text, whether it is runtime-only, and its range."""
    return field(default=default, metadata={"help": help, "runtime": runtime, "minimum": minimum, "above": above})


@dataclass(frozen=True)
class FitConfig:
    """Training settings of the one training loop (stored in every result's attrs)."""

    epochs: int = setting(30, "training epochs", minimum=1)
    batch_size: int = setting(128, "mini-batch size", minimum=1)
    # Adam without weight decay reaches the Bayes decoder of the canonical tasks in 30 epochs (usable
    # information 0.999 of 1 bit); the RINE paper's SGD (lr 0.01, weight decay 0.005) stops at 0.979,
    # and under a high β it leaves RINE 0.03–0.06 bit short on fully redundant tasks (docs/rine.md).
    optimizer: Literal["sgd", "adam", "adamw"] = setting("adam", "optimiser")
    lr: float = setting(0.003, "initial learning rate", above=0)
    lr_decay: float = setting(0.97, "learning-rate factor per epoch", above=0)
    momentum: float = setting(0.9, "SGD momentum", minimum=0)
    weight_decay: float = setting(0.0, "weight decay", minimum=0)
    schedule_per_step: bool = setting(False, "apply the β-schedule per step instead of per epoch")
    divergence_form: Literal["pairwise", "consensus"] = setting("pairwise", "n-source divergence")
    eval_every: int = setting(1, "held-out cross-entropy curve every k epochs (0: only at the end)", minimum=0)
    stop_loss: Optional[float] = setting(None, "stop once every member's epoch training loss is <= this")
    device: str = setting("auto", "auto | cpu | cuda[:k]", runtime=True)
    threads: Optional[int] = setting(None, "torch threads (default: chosen from the work)", runtime=True, minimum=1)
    ensemble: Literal["auto", "vmap", "loop"] = setting(
        "auto", "members of decoders without a native ensemble: one vmapped call (vmap) or one by one "
        "(loop); auto: vmap on GPUs", runtime=True)
    eval_batch_size: int = setting(4096, "batch size of evaluation passes", runtime=True, minimum=1)
    progress: bool = setting(True, "show progress", runtime=True)

    def __post_init__(self):
        for f in fields(self):
            value = self.param(f.name).parse(getattr(self, f.name), "training setting")
            low, above = f.metadata["minimum"], f.metadata["above"]
            if value is not None and ((low is not None and value < low) or (above is not None and value <= above)):
                rule = f">= {low}" if low is not None else f"> {above}"
                raise SpecError(f"training setting {f.name}={value!r} must be {rule} ({f.metadata['help']}).")
            object.__setattr__(self, f.name, value)
        if self.momentum >= 1:
            raise SpecError(f"training setting momentum={self.momentum} must be below 1.")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise SpecError(f"training setting device={self.device!r}: use auto, cpu, mps or cuda[:k].")

    @classmethod
    def param(cls, name: str) -> Param:
        f = next(f for f in fields(cls) if f.name == name)
        return param_from_annotation(name, cls.__annotations__[name], f.default)

    @classmethod
    def result_fields(cls) -> list[str]:
        """Settings that change results (everything but device, threads, progress, ...)."""
        return [f.name for f in fields(cls) if not f.metadata["runtime"]]

    def to_attrs(self) -> dict[str, Any]:
        return {k: ("none" if v is None else v) for k, v in asdict(self).items()}


def parse_seeds(value: Any) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '0,3' -> (0, 3); also lists of such items."""
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        out = [s for item in items for tok in str(item).split(",") if tok.strip() for s in int_range(tok)]
    except ValueError as exc:
        raise SpecError(f"seeds: {exc}; write e.g. 0, 0-4 or 0,3") from None
    return _unique("seed", out, lambda s: s >= 0, "non-negative integers")


def parse_betas(value: Any) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        out = [float(tok) for item in items for tok in str(item).split(",") if tok.strip()]
    except ValueError as exc:
        raise SpecError(f"beta {value!r} is not a number ({exc}); write e.g. 15 or 0,5,15") from None
    return _unique("beta", out, lambda b: math.isfinite(b) and b >= 0, "finite numbers >= 0")


def _unique(what: str, values: list, ok, rule: str) -> tuple:
    bad = [v for v in values if not ok(v)]
    if bad:
        raise SpecError(f"{what} values must be {rule}; got {bad}.")
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise SpecError(f"{what} {dup} given more than once.")
    return tuple(values)


# The default divergence: total variation (∈ [0, 1] for any number of classes, so a β means the same
# for 2 or 10 classes) with a smooth bottom of width 0.03, an exact penalty whose gradient does not
# chatter once the decoders agree (plugins/usable_divergences/functions.py, docs/rine.md).
DEFAULT_DIVERGENCE = "tv:smooth=0.03"

RUN_KEYS = ("metric", "source", "decoder", "divergence", "schedule", "beta", "seed")
PLUGIN_KINDS = {"source": "sources", "decoder": "decoders", "divergence": "divergences",
                "schedule": "schedules", "metric": "metrics"}


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run: the metric and its plugins, βs, seeds and training settings."""

    metric: Spec
    sources: tuple[Spec, ...] = ()
    decoder: Spec = Spec("mlp")
    divergence: Optional[Spec] = parse_spec(DEFAULT_DIVERGENCE)
    schedule: Spec = Spec("exp")
    betas: tuple[float, ...] = (0.0,)
    seeds: tuple[int, ...] = (0,)
    fit: FitConfig = FitConfig()

    @classmethod
    def create(cls, metric, sources=(), decoder="mlp", divergence=DEFAULT_DIVERGENCE, schedule="exp", betas=(0.0,),
               seeds=(0,), fit: FitConfig | None = None, **fit_settings) -> "RunSpec":
        """From spec texts and plain values: ``RunSpec.create("rine", ["pid:task=and"], betas=[15])``."""
        sources = [sources] if isinstance(sources, (str, Spec)) else list(sources)
        no_div = divergence is None or str(divergence).lower() == "none"
        return cls(parse_spec(metric), tuple(parse_spec(s) for s in sources), parse_spec(decoder),
                   None if no_div else parse_spec(divergence), parse_spec(schedule), parse_betas(betas),
                   parse_seeds(seeds), replace(fit or FitConfig(), **fit_settings))

    @classmethod
    def from_options(cls, config: dict[str, Any], **flags: Any) -> "RunSpec":
        """A TOML config's values overridden by command-line flags (None or empty = not given)."""
        values = {k: config[k] for k in RUN_KEYS if k in config}
        values.update({k: v for k, v in flags.items() if k in RUN_KEYS and v not in (None, (), [])})
        fit_values = {k: config[k] for k in _fit_names() if k in config}
        fit_values.update({k: v for k, v in flags.items() if k in _fit_names() and v is not None})
        if not values.get("metric"):
            raise SpecError("give a METRIC (see `usable list metrics`) or a --config with metric = ...")
        return cls.create(values["metric"], values.get("source", ()), values.get("decoder", "mlp"),
                          values.get("divergence", DEFAULT_DIVERGENCE), values.get("schedule", "exp"),
                          values.get("beta", (0.0,)), values.get("seed", (0,)), FitConfig(**fit_values))

    def with_param(self, key: str, value: Any) -> "RunSpec":
        """This run with one setting changed, by a sweep's grid key: ``seed``, ``beta``, a training
        setting (``epochs``), a whole spec (``decoder``, ``source``) or a plugin parameter
        (``source.width``, ``source2.width``, ``decoder.hidden``, ``metric.per_class``)."""
        head, dot, param = key.partition(".")
        if key == "seed":
            return replace(self, seeds=parse_seeds(value))
        if key == "beta":
            return replace(self, betas=parse_betas(value))
        if key in _fit_names():
            return replace(self, fit=replace(self.fit, **{key: value}))
        if not dot and key in ("source", "decoder", "divergence", "schedule"):
            if key == "source":
                return replace(self, sources=(parse_spec(value),))
            none = key == "divergence" and str(value).lower() == "none"
            return replace(self, **{key: None if none else parse_spec(value)})
        if dot and param and re.fullmatch(r"source\d*", head):
            n = int(head[6:]) - 1 if head != "source" else None
            if n is not None and not 0 <= n < len(self.sources):
                raise SpecError(f"{key}: there are {len(self.sources)} sources; write source1..source{len(self.sources)}")
            return replace(self, sources=tuple(s.with_params(**{param: value}) if n in (None, k) else s
                                               for k, s in enumerate(self.sources)))
        if dot and param and head in PLUGIN_KINDS:
            spec = getattr(self, head)
            if spec is None:
                raise SpecError(f"{key}: the run has no {head} (it is 'none')")
            return replace(self, **{head: spec.with_params(**{param: value})})
        known = ["seed", "beta", *_fit_names(), "source", "decoder", "divergence", "schedule",
                 *(f"{k}.PARAM" for k in PLUGIN_KINDS), "sourceN.PARAM"]
        raise SpecError(f"unknown setting {key!r}; use one of: {', '.join(known)}")

    def plugin_specs(self) -> list[tuple[str, Spec]]:
        out = [("metrics", self.metric), ("decoders", self.decoder), ("schedules", self.schedule)]
        out += [("sources", s) for s in self.sources]
        return out + ([("divergences", self.divergence)] if self.divergence is not None else [])

    def validate(self) -> "RunSpec":
        """Check every plugin name and parameter now, before any data is loaded."""
        from .registry import get_entry
        for kind, spec in self.plugin_specs():
            get_entry(kind, spec.name).resolve(spec.params)
        if self.fit.device.startswith("cuda"):
            import torch
            if not torch.cuda.is_available():
                raise SpecError(f"--device {self.fit.device}: CUDA is not available here; use --device cpu or auto")
        return self

    def to_attrs(self) -> dict[str, Any]:
        return {"metric": str(self.metric), "sources": [str(s) for s in self.sources],
                "decoder": str(self.decoder), "divergence": str(self.divergence) if self.divergence else "none",
                "schedule": str(self.schedule), "betas": list(self.betas), "seeds": list(self.seeds),
                "fit": json.dumps(self.fit.to_attrs())}

    def identity(self, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
        """What makes two runs compute the same numbers: every setting but the runtime ones (and
        the keys in ``leave_out``, e.g. the grid keys of a sweep)."""
        attrs = self.to_attrs()
        attrs["fit"] = {k: v for k, v in self.fit.to_attrs().items()
                        if k in FitConfig.result_fields() and k not in leave_out}
        return {k: v for k, v in attrs.items() if k not in leave_out}


def _fit_names() -> list[str]:
    return [f.name for f in fields(FitConfig)]


# ------------------------------------------------------------------------------------ configs
CONFIG_KEYS = {*RUN_KEYS, "store", "name", "grid", "sweep", "description", "paper"}
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def config_path(name: str) -> Path:
    """A config file by path, or one shipped with usable by name (``rine-table-a5``)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (name if name.endswith(".toml") else f"{name}.toml")
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    raise SpecError(f"config {name!r} is neither a file nor a shipped config; shipped: {', '.join(names) or 'none'}")


def load_config(name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore
    path = config_path(name)
    try:
        cfg = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"config {path}: not valid TOML ({exc})") from None
    unknown = set(cfg) - CONFIG_KEYS - set(_fit_names())
    if unknown:
        raise SpecError(f"config {path}: unknown keys {sorted(unknown)}; known: {sorted(CONFIG_KEYS | set(_fit_names()))}")
    cfg["_path"] = str(path)
    return cfg


