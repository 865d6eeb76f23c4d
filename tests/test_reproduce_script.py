"""scripts/reproduce.sh run end to end with ``lm2`` and the analysis scripts stubbed.

The script reruns RESULTS.md over many hours, so no test trains it for real. This one runs every line of it in
seconds: a stub ``lm2`` records its command line and makes the folders a real run leaves (a checkpoint, a
config.yaml, an evaluation folder), a stub ``python`` records each ``scripts/*.py`` line (``qa2_hops.py train``
makes a run as ``lm2 train`` does, ``with_config.py`` copies its checkpoint; ``python -c`` runs for real); both
fail when a model, checkpoint, tokenizer or result folder the line reads has not been made by an earlier line.
Each recorded command is then checked in-process against the real CLI and config schema: its flags parse, every
``--section.field`` override builds a valid config, every recipe plans, every BABILong evaluation names known tasks
and lengths.
A typo in a flag, an override that no longer exists or a run read before it is trained fails here, not hours into
a rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lm2.cli import build_parser
from lm2.eval.babilong import parse_lengths, parse_tasks
from lm2.train.commands import DEMO_CONFIG
from lm2.train.config import load_config, shipped_configs_dir
from lm2.train.recipe import load_recipe, plan

REPO = Path(__file__).resolve().parents[1]

# Shared by both stubs: record a call, check what it reads, make what it writes.
COMMON = """
import json, os, shutil, sys, uuid
from pathlib import Path
import yaml

LOG, OUT = Path(os.environ["STUB_LOG"]), os.environ["STUB_OUT"]
CONFIGS = Path(os.environ["STUB_CONFIGS"])


def record(kind, args):
    (LOG / f"{kind}-{uuid.uuid4().hex}.json").write_text(json.dumps(args))


def value(args, flag):
    return args[args.index(flag) + 1] if flag in args else None


def need(path, what):
    if path is not None and path.startswith(OUT) and not Path(path).exists():
        sys.exit(f"stub: {what} {path} is read before any earlier line made it")


def config_file(name):
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else CONFIGS / f"{name}.yaml"


def make_run(out, config, args=(), stop_after=None, **fields):
    # a run's folder: its last checkpoint (at the line's --train.stop_after, else step 1) and its config.yaml (the
    # config it started from with the fields that chain runs: model.init_from, data.tokenizer)
    args = list(args)
    out, step = Path(out), int(value(args, "--train.stop_after") or stop_after or 1)
    (out / f"ckpt-{step:06d}").mkdir(parents=True, exist_ok=True)
    if (out / "config.yaml").exists():  # resumed
        return out / f"ckpt-{step:06d}"
    values = yaml.safe_load(config_file(config).read_text())
    for key in ("model.init_from", "data.tokenizer"):
        field = fields.get(key) or value(args, "--" + key)
        if field:
            section, name = key.split(".")
            values.setdefault(section, {})[name] = str(field)
    (out / "config.yaml").write_text(yaml.safe_dump(values))
    return out / f"ckpt-{step:06d}"
"""

STUB_LM2 = """
args = sys.argv[1:]
record("lm2", args)
for flag in ("--model", "--model.init_from", "--data.tokenizer", "--tokenizer", "--config"):
    need(value(args, flag), flag)
command = args[0]
if command == "train":
    need(args[1], "config")
    make_run(value(args, "--out_dir"), args[1], args)
elif command == "demo":
    make_run(value(args, "--out_dir"), value(args, "--config") or CONFIGS / os.environ["STUB_DEMO"])
elif command == "recipe":
    book = yaml.safe_load((CONFIGS / "recipes" / f"{args[1]}.yaml").read_text())
    out = Path(value(args, "--out-dir"))
    kinds = value(args, "--kinds").split(",") if "--kinds" in args else book["kinds"]
    shared = [p for p in book["phases"] if p.get("shared")]
    chains = {None: shared, **{kind: [p for p in book["phases"] if not p.get("shared")] for kind in kinds}}
    first = last = None  # as the recipe chains its phases: each from the one before, the first phase's tokenizer
    for kind, phases in chains.items():
        if kind is not None:
            first = last = shared_last if shared else None
        for phase in phases:
            stop = phase.get("set", {}).get("train.stop_after")
            last = make_run(out / phase["name"] if kind is None else out / kind / phase["name"], book["config"],
                            stop_after=stop, **{"model.init_from": last, "data.tokenizer": first})
            first = first or last
        if kind is None:
            shared_last = last
    if "--eval-lengths" in args:
        for kind in kinds:
            (out / kind / "eval").mkdir(parents=True, exist_ok=True)
elif command in ("eval", "inspect") and "--out" in args:
    Path(value(args, "--out")).mkdir(parents=True, exist_ok=True)
"""

STUB_PYTHON = """
args = sys.argv[1:]
if not args or not args[0].startswith("scripts/"):  # python -c, python -m: the real interpreter
    os.execv(sys.executable, [sys.executable, *args])
record("script", args)
if not Path(args[0]).is_file():
    sys.exit(f"stub: {args[0]} does not exist")
if args[0] == "scripts/qa2_hops.py" and args[1] == "train":  # lm2 train with the hops asked
    rest = [a for a in args[2:] if a != "--verb"]
    if rest[0] == "--ask":
        rest = rest[2:]
    need(value(rest, "--model.init_from"), "--model.init_from")
    make_run(value(rest, "--out_dir"), rest[0], rest)
    sys.exit(0)
if args[0] in ("scripts/with_config.py", "scripts/fresh_memory.py"):  # a checkpoint copied (config fields
    # changed, or the memory re-initialised): the copy is made
    need(args[1], "a checkpoint")
    shutil.copytree(args[1], args[2])
    sys.exit(0)
for before, arg in zip(["", *args], args):
    if before not in ("--out", "--out_dir"):  # what it writes need not exist; anything else it reads must
        for path in arg.split("=", 1)[-1].split(","):  # NAME=DIR1,DIR2: one folder per seed
            need(path, "an input")
"""


def stub(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(COMMON) + textwrap.dedent(body))
    path.chmod(0o755)


def run_script(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """Run scripts/reproduce.sh ARGS with the stubs first on PATH; (lm2 calls, script calls) as typed."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    stub(bin_dir / "lm2", STUB_LM2)
    stub(bin_dir / "python", STUB_PYTHON)
    out = str(tmp_path / "out")
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STUB_LOG": str(log),
               "STUB_OUT": out, "STUB_CONFIGS": str(shipped_configs_dir()), "STUB_DEMO": DEMO_CONFIG, **(env or {})}
    done = subprocess.run(["bash", "scripts/reproduce.sh", *args, out], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"reproduce.sh stopped:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.rstrip().endswith(f"done: {out}")
    calls = {kind: [json.loads(p.read_text()) for p in log.glob(f"{kind}-*.json")] for kind in ("lm2", "script")}
    return calls["lm2"], calls["script"]


def check_lm2_call(parser, argv: list[str], scratch: Path) -> str:
    """Parse one recorded `lm2 ...` line with lm2's parser and validate what it configures; its command name."""
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit:
        pytest.fail(f"lm2 rejects the flags of: lm2 {' '.join(argv)}")
    assert not unknown or hasattr(args, "_overrides"), f"unknown flags {unknown} in: lm2 {' '.join(argv)}"
    command = args._command
    try:
        if command in ("train", "demo"):
            config = args.config if command == "train" else args.config or str(shipped_configs_dir() / DEMO_CONFIG)
            overrides = [*unknown, *(["--model.init_from", args.init_from] if args.init_from else [])]
            load_config(config, overrides)
        elif command == "recipe":
            kinds = args.kinds.split(",") if args.kinds else None
            plan(load_recipe(args.recipe), scratch, unknown, kinds=kinds)
            if args.eval_lengths:
                parse_lengths(args.eval_lengths)
        elif command == "babilong":
            parse_tasks(args.tasks)
            parse_lengths(args.lengths)
    except (ValueError, KeyError, OSError) as err:
        pytest.fail(f"lm2 {' '.join(argv)}\nis invalid: {err}")
    return command


def check_calls(lm2_calls: list[list[str]], script_calls: list[list[str]], scratch: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    parser = build_parser()
    for argv in lm2_calls:
        command = check_lm2_call(parser, argv, scratch)
        counts[command] = counts.get(command, 0) + 1
    for argv in script_calls:  # qa2_hops.py train: the rest of its line is an lm2 train command line
        if argv[:2] == ["scripts/qa2_hops.py", "train"]:
            rest = [a for a in argv[2:] if a != "--verb"]
            check_lm2_call(parser, ["train", *(rest[2:] if rest[0] == "--ask" else rest)], scratch)
    return counts


def test_reproduce_quick_runs_through_with_valid_commands(tmp_path):
    lm2_calls, script_calls = run_script(tmp_path, "--quick")
    counts = check_calls(lm2_calls, script_calls, tmp_path / "plan")
    assert set(counts) == {"train", "demo", "recipe", "recall", "babilong", "memory"}, counts  # lm2 inspect memory
    assert counts["train"] >= 20 and counts["recipe"] >= 3 and counts["babilong"] >= 10, counts
    assert any(c[0] == "scripts/compare_recall.py" for c in script_calls)


def test_reproduce_full_runs_through_with_valid_commands(tmp_path):
    """Every experiment, the seeds and SmolLM2 blocks included (some 400 stubbed calls, 10-20 s)."""
    revision = "6915b99"  # the script reads the demo's config of an earlier commit (the 1b rows on BABILong)
    if subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=REPO).returncode:
        pytest.skip(f"needs the git history (commit {revision}); a shallow clone lacks it")
    lm2_calls, script_calls = run_script(tmp_path, env={"SEEDS": "1", "EXP4": "1"})
    counts = check_calls(lm2_calls, script_calls, tmp_path / "plan")
    # RESULTS.md 1c's phase-five rows: the recipe with lookback on in its phase five
    recipes = [c for c in lm2_calls if c[0] == "recipe"]
    assert any("--five.model.config.memory_write_address" in c for c in recipes)
    assert counts["mmlu"] == 3 and counts["train"] >= 100 and counts["babilong"] >= 50, counts
