"""Training recipes: several `lm2 train` runs in a row, each starting from the checkpoint of the one before.

A recipe is a YAML file (or the name of one shipped in ``lm2/configs/recipes``)::

    config: babilong-tiny              # the config every phase starts from
    kinds: [lm2, vanilla, rmt]         # the model kinds it trains, each through the same phases and data
    every_phase: {model.config.attention_key_shift: true}    # fields set in every phase
    per_kind: {vanilla: {model.config.intermediate_size: 662}}  # fields of one kind's phases (equal budgets)
    phases:
      - name: backbone                 # runs once, for all kinds (shared phases come first)
        shared: true
        set: {model.kind: vanilla, train.seed: 4, ...}
      - name: memory                   # runs once per kind, from the previous phase's last checkpoint
        set: {train.seed: 14, ...}

Every phase after the first starts from the last checkpoint of the phase before (``model.init_from``) and reads
the first phase's tokenizer from its last checkpoint (``data.tokenizer``), so memory can be added to a backbone
that has already learned the task: LM2 keeps the backbone and adds memory blocks whose read starts at zero
(``model.config.memory_layers`` says where); RMT adds memory tokens. Runs go to
``OUT/PHASE`` (shared) and ``OUT/KIND/PHASE``. A phase whose last checkpoint exists is skipped, and one that
stopped part-way is resumed: rerun the same command to finish a recipe.

A recipe may start from another (``base: babilong-qa1to5-zero``, a shipped name or a file beside it): it takes
the base's config, kinds, every_phase and per_kind unless it gives its own, and its phases (its own list, or the
base's when it gives none); a phase written ``{name: five, from_base: true}`` is the base's phase of that name, with
any ``set`` of its own applied on top. So a recipe that replaces one phase does not copy the others.

Command-line overrides (``--section.field VALUE``) apply to every phase; ``--PHASE.section.field VALUE`` to one
phase (``--backbone.train.seed 3``). Each phase's run is recorded in its model card as the ``lm2 train`` command
that does the same.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lm2.train import checkpoint as ckpt
from lm2.train.config import (
    MODEL_KINDS,
    TrainConfig,
    from_dict,
    read_config_values,
    read_override,
    recipes_dir,
    resolve_config,
    resolve_shipped,
    set_field,
    split_overrides,
)
from lm2.train.loop import train

SECTIONS = tuple(TrainConfig.__dataclass_fields__)  # a phase may not be named like a config section
_RECIPE_KEYS = {"base", "config", "kinds", "every_phase", "per_kind", "phases"}
_PHASE_KEYS = {"name", "shared", "set", "from_base"}
_IGNORED = {"out_dir", "train.threads"}  # fields a finished phase may differ in and still count as done


@dataclass
class Phase:
    name: str
    shared: bool = False  # trained once (without regard to kind), before the per-kind phases
    fields: dict[str, Any] = field(default_factory=dict)  # dotted config fields -> values


@dataclass
class Recipe:
    path: Path
    config: str
    kinds: list[str]
    every_phase: dict[str, Any]
    phases: list[Phase]
    per_kind: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> fields of its (unshared) phases


def resolve_recipe(path: str | Path) -> Path:
    """A recipe file, or the bare name of a shipped one (``babilong-bind``)."""
    return resolve_shipped(path, recipes_dir(), "recipe", "lm2 recipe babilong-bind")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where} must be a mapping of dotted config fields to values (e.g. train.lr: 1.0e-3)")
    return value


def load_recipe(path: str | Path, _inside: tuple[Path, ...] = ()) -> Recipe:
    """Read and check a recipe (and the base it names); every phase's config is built and validated later, before
    any training."""
    path = resolve_recipe(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"recipe file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ValueError(f"recipe file {path}: a recipe is a YAML mapping with config, kinds and phases")
    unknown = set(values) - _RECIPE_KEYS
    if unknown:
        hint = "; a training config? give it to lm2 train" if unknown & set(SECTIONS) else ""
        raise ValueError(f"recipe file {path}: unknown key(s) {', '.join(sorted(unknown))} (a recipe has "
                         f"{', '.join(sorted(_RECIPE_KEYS))}{hint})")
    base = _load_base(path, values, _inside)
    if "config" not in values and base is not None:
        config = base.config
    elif not isinstance(values.get("config"), str):
        raise ValueError(f"recipe file {path}: config must name the config every phase starts from")
    else:
        beside = path.parent / values["config"]  # a config path is read from the recipe's folder first
        config = (str(beside) if beside.is_file() and Path(values["config"]).name != values["config"]
                  else values["config"])
        resolve_config(config)  # a missing config is an error now, not after the first phase
    kinds = values.get("kinds") or (base.kinds if base is not None else ["lm2"])
    if not isinstance(kinds, list) or not kinds or any(k not in MODEL_KINDS for k in kinds):
        raise ValueError(f"recipe file {path}: kinds={kinds!r} is invalid: a list of {', '.join(MODEL_KINDS)}")
    per_kind = values.get("per_kind") if "per_kind" in values or base is None else base.per_kind
    per_kind = per_kind or {}
    if not isinstance(per_kind, dict) or any(k not in MODEL_KINDS for k in per_kind):
        raise ValueError(f"recipe file {path}: per_kind={per_kind!r:.120} is invalid: a mapping from a model kind "
                         f"({', '.join(MODEL_KINDS)}) to the fields its phases set (e.g. vanilla: "
                         f"{{model.config.intermediate_size: 662}})")
    per_kind = {k: _mapping(v, f"per_kind: {k}") for k, v in per_kind.items()}
    every_phase = (_mapping(values.get("every_phase"), "every_phase") if "every_phase" in values or base is None
                   else base.every_phase)
    if "phases" not in values and base is not None:
        phases = [copy.deepcopy(p) for p in base.phases]
    else:
        phases = [_read_phase(path, i, raw, base) for i, raw in enumerate(values.get("phases") or [])]
    if not phases:
        raise ValueError(f"recipe file {path}: phases is empty: a recipe needs at least one phase")
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"recipe file {path}: phase names repeat ({', '.join(names)})")
    shared = [p.shared for p in phases]
    if shared != sorted(shared, reverse=True):
        raise ValueError(f"recipe file {path}: shared phases must come before the per-kind ones (they are trained "
                         f"once, and every kind continues from them)")
    return Recipe(path, config, kinds, every_phase, phases, per_kind)


def _load_base(path: Path, values: dict, inside: tuple[Path, ...]) -> Recipe | None:
    """The recipe ``base`` names (a file beside this one first, then a shipped name), or None."""
    if "base" not in values:
        return None
    name = values["base"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"recipe file {path}: base={name!r} is invalid: the name or file of the recipe this one "
                         f"starts from (e.g. base: babilong-qa1to5-zero)")
    beside = path.parent / name
    try:
        found = resolve_recipe(beside if beside.is_file() else name)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"recipe file {path}: its base: {err}") from None
    chain = (*inside, path.resolve())
    if found.resolve() in chain:
        raise ValueError(f"recipe file {path}: base {name} leads back to {found.name} "
                         f"({' -> '.join(p.name for p in (*chain, found))}): a recipe cannot start from itself")
    return load_recipe(found, chain)


def _read_phase(path: Path, i: int, raw: Any, base: Recipe | None) -> Phase:
    """One entry of ``phases``: its own (name, shared, set), or the base's phase of that name (``from_base``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or set(raw) - _PHASE_KEYS:
        raise ValueError(f"recipe file {path}: phase {i + 1} must be a mapping with name, and optionally shared, set "
                         f"and from_base (got {raw!r:.120})")
    name = raw["name"]
    if not name.replace("-", "").replace("_", "").isalnum() or name in SECTIONS or name in MODEL_KINDS:
        raise ValueError(f"recipe file {path}: phase name {name!r} is invalid: letters, digits, - and _, and not "
                         f"a config section ({', '.join(SECTIONS)}) or a model kind")
    fields = _mapping(raw.get("set"), f"phase {name}: set")
    if not raw.get("from_base", False):
        return Phase(name, bool(raw.get("shared", False)), fields)
    inherited = {p.name: p for p in (base.phases if base is not None else [])}
    if name not in inherited:
        where = (f"its base {base.path.name} has {', '.join(inherited)}" if base is not None
                 else "it names no base (base: RECIPE)")
        raise ValueError(f"recipe file {path}: phase {name} has from_base, but {where}")
    found = inherited[name]
    return Phase(name, bool(raw.get("shared", found.shared)), {**copy.deepcopy(found.fields), **fields})


@dataclass
class PlannedRun:
    """One phase for one kind (or for all, when shared): its validated config and how to run it."""
    phase: Phase
    kind: str | None  # None: a shared phase
    cfg: TrainConfig
    command: str  # the `lm2 train` command that does the same
    previous: PlannedRun | None = None

    @property
    def final_checkpoint(self) -> Path:
        return Path(self.cfg.out_dir) / f"ckpt-{self.cfg.last_step():06d}"

    def state(self) -> str:
        """done (its last checkpoint is there and intact), partial (a run was started in out_dir) or new. A
        finished phase trained with another config is an error: the later phases would not be the recipe's."""
        final = self.final_checkpoint
        if final.is_dir() and ckpt.damage(final) is None:
            saved = _comparable(yaml.safe_load((final / ckpt.CONFIG_FILE).read_text()))
            planned = _comparable(self.cfg.to_dict())
            changed = sorted(k for k in set(saved) | set(planned)
                             if k not in _IGNORED and saved.get(k) != planned.get(k))
            if changed:
                shown = "; ".join(f"{k}: {saved.get(k)!r} there, {planned.get(k)!r} now" for k in changed[:4])
                raise ValueError(f"{final} was trained with another config ({shown}): delete {self.cfg.out_dir} to "
                                 f"train this phase again, or give another --out-dir")
            return "done"
        return "partial" if ckpt.existing_run(self.cfg.out_dir) else "new"


def chain_tokens(planned: PlannedRun) -> int:
    """The tokens a finished run and every phase before it trained on (padding not counted), from their last
    checkpoints: the budget of that kind's model, shared phases included."""
    total = 0
    while planned is not None:
        total += int(ckpt.load_trainer_state(planned.final_checkpoint).get("tokens", 0))
        planned = planned.previous
    return total


def _comparable(values: dict) -> dict[str, Any]:
    """A config's fields, flat, with the folders it starts from resolved (a relative path, a link)."""
    flat = _flatten(values)
    for key in ("model.init_from", "data.tokenizer"):
        if isinstance(flat.get(key), str) and Path(flat[key]).exists():
            flat[key] = str(Path(flat[key]).resolve())
    return flat


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} as {"train.lr": 1e-3}; model.config stays one value (a dict)."""
    flat = {}
    for key, value in values.items():
        name = prefix + key
        if isinstance(value, dict) and name != "model.config":
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _flow(value: Any) -> str:
    """A value as one line of YAML that ``read_override`` reads back to it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def plan(recipe: Recipe, out_dir: str | Path, overrides: list[str] | None = None,
         kinds: list[str] | None = None) -> list[PlannedRun]:
    """Every run of ``recipe`` in order (shared phases once, then each kind's phases), each config validated."""
    out_dir = Path(out_dir)
    kinds = kinds or recipe.kinds
    bad = [k for k in kinds if k not in MODEL_KINDS]
    if bad:
        raise ValueError(f"--kinds {','.join(kinds)} is invalid: {', '.join(bad)} is not a model kind "
                         f"({', '.join(MODEL_KINDS)})")
    names = {p.name for p in recipe.phases}
    common: list[tuple[str, str]] = []
    per_phase: dict[str, list[tuple[str, str]]] = {}
    for key, text in split_overrides(overrides or []):
        head, _, rest = key.partition(".")
        if key == "out_dir":
            raise ValueError("--out_dir is the recipe's own folder: give it as --out-dir OUT")
        if head in names and rest:
            per_phase.setdefault(head, []).append((rest, text))
        elif head in SECTIONS:
            common.append((key, text))
        else:
            raise ValueError(f"override --{key} is invalid: use --section.field VALUE for every phase or "
                             f"--PHASE.section.field VALUE for one (phases: {', '.join(sorted(names))})")
    base = read_config_values(recipe.config)
    runs: list[PlannedRun] = []
    last_shared: PlannedRun | None = None
    for kind in [None] + list(kinds):
        previous = last_shared
        for phase in recipe.phases:
            if phase.shared != (kind is None):
                continue
            fields: dict[str, Any] = dict(recipe.every_phase)
            if kind is not None:
                fields["model.kind"] = kind
                fields.update(recipe.per_kind.get(kind, {}))  # a phase's own fields still win
            fields.update(phase.fields)
            if previous is not None:  # the tokenizer is the first phase's, saved in each of its checkpoints
                root = previous
                while root.previous is not None:
                    root = root.previous
                fields["model.init_from"] = str(previous.final_checkpoint)
                fields.setdefault("data.tokenizer", str(root.final_checkpoint))
            for key, text in common + per_phase.get(phase.name, []):
                fields[key] = read_override(key, text)
            fields["out_dir"] = str(out_dir / phase.name if kind is None else out_dir / kind / phase.name)
            values = copy.deepcopy(base)
            for key, value in fields.items():
                set_field(values, key, value)
            try:
                cfg = from_dict(values)
            except (ValueError, TypeError) as err:
                raise ValueError(f"recipe {recipe.path.name}, phase {phase.name}"
                                 f"{'' if kind is None else f' ({kind})'}: {err}") from None
            command = shlex.join(["lm2", "train", recipe.config, *[part for key, value in fields.items()
                                                                   for part in (f"--{key}", _flow(value))]])
            run = PlannedRun(phase, kind, cfg, command, previous)
            runs.append(run)
            previous = run
        if kind is None:
            last_shared = previous
    return runs


def run_plan(runs: list[PlannedRun], progress: bool = True, on_done=None) -> None:
    """Train the planned runs in order (as ``plan`` gives them: each after the phase it starts from), skipping
    finished ones and resuming started ones. ``on_done(run, trained)`` is called after each (``trained`` is the
    loop's Run, or None when the phase had finished before)."""
    for planned in runs:
        state = planned.state()
        label = planned.phase.name + ("" if planned.kind is None else f" ({planned.kind})")
        if state == "done":
            print(f"== {label}: finished before ({planned.final_checkpoint}), skipped")
            if on_done:
                on_done(planned, None)
            continue
        if state == "partial" and ckpt.latest_intact(planned.cfg.out_dir)[0] is None:
            raise ValueError(f"{planned.cfg.out_dir} holds a start of phase {label} without a complete checkpoint to "
                             f"resume from: delete that folder and rerun the recipe")
        print(f"== {label}: {'resuming' if state == 'partial' else 'training'} into {planned.cfg.out_dir}\n"
              f"   {planned.command}", flush=True)
        trained = train(planned.cfg, resume=state == "partial", progress=progress, command=planned.command)
        if on_done:
            on_done(planned, trained)
