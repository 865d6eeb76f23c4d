"""`lm2 train CONFIG.yaml|NAME [--section.field VALUE ...] [--resume | --overwrite] [--init-from FOLDER|smollm2-135m]
[--count-tokens]` and `lm2 demo` (the README's main job: a tiny LM2 trained on generated BABILong in minutes,
evaluated, plotted). NAME is a config shipped in the package (lm2/configs: babilong-tiny, recall-tiny, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm2.cli import positive_int

DEMO_CONFIG = "babilong-tiny.yaml"  # shipped in the package: lm2/configs (lm2.train.config.shipped_configs_dir)

_EPILOG = """Overrides set any config field: --train.lr 3e-4 --model.config.sliding_window 64
--data.curriculum '[{steps: 50, lengths: [0k]}]' (values are YAML). Under torchrun:
torchrun --nproc-per-node 2 -m lm2 train CONFIG --distributed.strategy fsdp"""


def register(sub: argparse._SubParsersAction) -> None:
    from lm2.train.config import shipped_config_names  # light (no torch)

    p = sub.add_parser("train", help="train or fine-tune a model from a YAML config", epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a YAML config file, or the name of one shipped with lm2 (a file of that name in "
                                   f"the current folder wins): {', '.join(shipped_config_names())}")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in out_dir")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in out_dir (checkpoints, best/, metrics) and start over; without it "
                        "or --resume, an out_dir holding a run is refused")
    p.add_argument("--init-from", default=None, help="an HF Llama folder or smollm2-135m (sets model.init_from)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--count-tokens", action="store_true",
                   help="print the tokens the config trains on (its budget) and exit, without training")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.field VALUE ... (see below)")
    p.set_defaults(func=run_train)

    d = sub.add_parser("demo", help=f"train a tiny LM2 on generated BABILong (the shipped config "
                                    f"{DEMO_CONFIG.removesuffix('.yaml')}), evaluate it, "
                                    "print a results table and write a plot; about 10 minutes on 2 CPU cores",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--config", default=None,
                   help=f"a YAML config file or a shipped config's name (default: the shipped {DEMO_CONFIG})")
    d.add_argument("--resume", action="store_true")
    d.add_argument("--overwrite", action="store_true")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.field VALUE ...")
    d.set_defaults(func=run_train, init_from=None)


def _take_flags(args) -> list[str]:
    """Flags given after the config land among the overrides (argparse REMAINDER): pick ours out."""
    rest, items = [], list(getattr(args, "overrides", None) or [])
    while items:
        item = items.pop(0)
        name, eq, value = item.partition("=")
        if item in ("--resume", "--overwrite"):
            setattr(args, item[2:], True)
        elif item == "--no-progress":
            args.no_progress = True
        elif item == "--count-tokens":
            args.count_tokens = True
        elif name in ("--init-from", "--threads") and (eq or items):
            setattr(args, name[2:].replace("-", "_"), value if eq else items.pop(0))
        else:
            rest.append(item)
    return rest


def run_train(args) -> int:
    from lm2.cli import UserError, no_progress_bars
    from lm2.train.config import load_config
    from lm2.train.loop import TrainingDiverged, train
    from lm2.train.model_card import command_line

    overrides = _take_flags(args)
    if args.config is None:  # lm2 demo: the shipped config, whatever the current folder holds
        from lm2.train.config import shipped_configs_dir

        args.config = str(shipped_configs_dir() / DEMO_CONFIG)
    if args.init_from:
        overrides += ["--model.init_from", args.init_from]
    if args.threads is not None:  # the same as --train.threads N, and it wins over the config's value
        try:
            threads = positive_int(str(args.threads))
        except argparse.ArgumentTypeError as err:
            raise UserError(f"--threads: {err}") from None
        overrides += ["--train.threads", str(threads)]
    cfg = load_config(args.config, overrides)  # validated before any work starts
    if getattr(args, "count_tokens", False):
        from lm2.train.data import budget_tokens, task_tokenizer

        tokens = budget_tokens(cfg, task_tokenizer(cfg), progress=not args.no_progress)
        print(f"{args.config}: {tokens:,} tokens in {cfg.total_steps()} steps of {cfg.train.batch_size} sequences "
              "(padding not counted; the same for every model kind, RMT's memory tokens aside)")
        return 0
    if args.no_progress:  # given after the config, it is only known here
        no_progress_bars()
    try:
        run = train(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite,
                    command=command_line(getattr(args, "argv", None)))
    except TrainingDiverged as err:
        raise UserError(str(err)) from None
    if run.ctx.is_main:
        report(run)
    return 0


def report(run) -> None:
    """Print the final results table and write the training-curve plot next to the checkpoints."""
    from lm2.train.loop import run_records
    from lm2.viz.curves import plot_curves, results_table

    cfg = run.cfg
    params = sum(p.numel() for p in run.model.parameters())
    trained = any(r["kind"] == "train" for r in run.history)
    print(f"\n{cfg.model.kind} ({params / 1e6:.2f}M parameters), {run.step} steps"
          f"{'' if trained else ' (the run had finished: nothing left to train)'}, {run.tokens:,} tokens "
          f"(padding not counted), {run.seconds:.0f} s in this process, out_dir {cfg.out_dir}")
    print(results_table(run_records(run)))  # the whole run: a resumed process holds only its own records
    path = plot_curves(Path(cfg.out_dir) / "metrics.jsonl", Path(cfg.out_dir) / "curves.png")
    print(f"plot: {path}")
