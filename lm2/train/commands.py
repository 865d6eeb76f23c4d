"""`lm2 train CONFIG.yaml|NAME [--section.field VALUE ...] [--resume | --overwrite] [--init-from FOLDER|smollm2-135m]
[--count-tokens]` and `lm2 demo` (the README's main job: a tiny LM2 trained on generated BABILong in minutes,
evaluated, plotted). NAME is a config shipped in the package (lm2/configs: babilong-tiny, recall-tiny, ...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lm2.cli import PositiveInt, UserError, available_cores, no_progress_bars
from lm2.train.config import recipe_names, shipped_config_names, shipped_configs_dir

DEMO_CONFIG = "babilong-qa1-demo.yaml"  # shipped in the package: lm2/configs (lm2.train.config.shipped_configs_dir)

_TRAIN_DOC = """

    Overrides set any config field: --train.lr 3e-4 --model.config.sliding_window 64
    --data.curriculum '[{{steps: 50, lengths: [0k]}}]' (values are YAML). Under torchrun:
    torchrun --nproc-per-node 2 -m lm2 train CONFIG --distributed.strategy fsdp

    Args:
        config: a YAML config file, or the name of one shipped with lm2 (a file of that name in the current folder
            wins): {shipped}
        resume: continue from the last complete checkpoint in out_dir
        overwrite: delete the run already in out_dir (checkpoints, best/, metrics) and start over; without it or
            --resume, an out_dir holding a run is refused
        init_from: an HF Llama folder or smollm2-135m (sets model.init_from)
        no_progress: no progress bar
        count_tokens: print the tokens the config trains on (its budget) and exit, without training
        threads: CPU threads for torch, saved as train.threads (default: the config's train.threads, else
            OMP_NUM_THREADS if set, else the cores this process may use)"""


def run_train(config: str, /, *overrides: str, resume: bool = False, overwrite: bool = False,
              init_from: str | None = None, no_progress: bool = False, count_tokens: bool = False,
              threads: PositiveInt | None = None, _argv: list[str] | None = None) -> int:
    """train or fine-tune a model from a YAML config, with --section.field VALUE overrides"""
    from lm2.train.config import load_config
    from lm2.train.loop import TrainingDiverged, train
    from lm2.train.model_card import command_line

    overrides = list(overrides)
    if init_from:
        overrides += ["--model.init_from", init_from]
    if threads is not None:  # the same as --train.threads N, and it wins over the config's value
        overrides += ["--train.threads", str(threads)]
    cfg = load_config(config, overrides)  # validated before any work starts
    if count_tokens:
        from lm2.train.data import budget_tokens, task_tokenizer

        tokens = budget_tokens(cfg, task_tokenizer(cfg), progress=not no_progress)
        of = f" (of a {cfg.total_steps()}-step schedule)" if cfg.train.stop_after else ""
        print(f"{config}: {tokens:,} tokens in {cfg.last_step()} steps{of} of {cfg.train.batch_size} sequences "
              "(padding not counted; the same for every model kind, RMT's memory tokens aside)")
        return 0
    if no_progress:
        no_progress_bars()
    try:
        run = train(cfg, resume=resume, progress=not no_progress, overwrite=overwrite, command=command_line(_argv))
    except TrainingDiverged as err:
        raise UserError(str(err)) from None
    if run.ctx.is_main:
        report(run)
    return 0


def run_demo(*overrides: str, config: str | None = None, resume: bool = False, overwrite: bool = False,
             init_from: str | None = None, no_progress: bool = False, count_tokens: bool = False,
             threads: PositiveInt | None = None, processes: PositiveInt | None = None,
             _argv: list[str] | None = None) -> int:
    """train a tiny LM2 on generated BABILong qa1, at 0k and then at 1k where only its memory reaches the facts
    (the shipped config babilong-qa1-demo), evaluate it at 0k and 1k, print a results table and write a plot;
    about 9-10 minutes on 2 CPU cores, where it trains as two data-parallel processes"""
    config = config or str(shipped_configs_dir() / DEMO_CONFIG)
    if processes is None:
        processes = default_demo_processes()
    if processes == 1 or count_tokens or "WORLD_SIZE" in os.environ:  # already one process of a torchrun
        return run_train(config, *overrides, resume=resume, overwrite=overwrite, init_from=init_from,
                         no_progress=no_progress, count_tokens=count_tokens, threads=threads, _argv=_argv)
    return launch_processes(processes, config, list(overrides), threads=threads, resume=resume, overwrite=overwrite,
                            init_from=init_from, no_progress=no_progress)


def default_demo_processes() -> int:
    """2 on a CPU-only machine with at least 2 cores, else 1 (a GPU trains the tiny demo in one process)."""
    import torch

    return 2 if not torch.cuda.is_available() and available_cores() >= 2 else 1


def launch_processes(processes: int, config: str, overrides: list[str], *, threads: int | None, resume: bool,
                     overwrite: bool, init_from: str | None, no_progress: bool) -> int:
    """Run ``lm2 train CONFIG`` as ``processes`` data-parallel processes on this machine (torch.distributed.run,
    gloo), each with its share of the threads, and return their exit status. The config is loaded here first, so
    that a bad value is one error before any process starts."""
    from lm2.train.config import load_config
    from lm2.train.loop import check_out_dir

    if init_from:
        overrides = [*overrides, "--model.init_from", init_from]
    cfg = load_config(config, overrides)  # checked here: a bad value or a taken out_dir is one error, no processes
    check_out_dir(cfg, resume, overwrite)
    if cfg.train.batch_size % processes:
        raise UserError(f"--processes {processes}: train.batch_size={cfg.train.batch_size} must be divisible by the "
                        f"number of processes")
    per = max(1, (threads or cfg.train.threads or available_cores()) // processes)
    extra = ["--distributed.strategy", "ddp", "--distributed.backend", "gloo", "--train.threads", str(per)]
    flags = (["--resume"] if resume else []) + (["--overwrite"] if overwrite else []) + (
        ["--no-progress"] if no_progress else [])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "lm2", "train", config, *overrides, *extra, *flags]
    print(f"training in {processes} processes of {per} thread(s) each (DDP over gloo; --processes 1 for one)",
          flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(per)}
    return subprocess.call(command, env=env)


def run_recipe(recipe: str, /, *overrides: str, out_dir: str | None = None, kinds: str | None = None,
               eval_lengths: str | None = None, eval_n: PositiveInt = 100, dry_run: bool = False,
               no_progress: bool = False, threads: PositiveInt | None = None) -> int:
    """train through the phases of a recipe, each from the last checkpoint of the one before

    Overrides: --section.field VALUE sets a field in every phase, --PHASE.section.field VALUE in one
    (--backbone.train.seed 3). Rerun the same command to finish a recipe that stopped: finished phases are
    skipped, a started one resumes.

    Args:
        recipe: a recipe YAML file, or the name of one shipped with lm2: {recipes}
        out_dir: the folder of the recipe's runs: OUT/PHASE for shared phases, OUT/KIND/PHASE for the others
            (default: runs/RECIPE)
        kinds: the model kinds to train, comma-separated (default: the recipe's)
        eval_lengths: then evaluate each kind's final checkpoint on BABILong at these lengths (e.g. 0k,1k,2k,4k;
            the test split, seed 0; the recipe's tasks) into OUT/KIND/eval, and compare them: a table and
            OUT/compare.png
        eval_n: test samples per task and length for --eval-lengths
        dry_run: print each phase's run (its `lm2 train` command and whether it is done) and exit
        no_progress: no progress bar
        threads: CPU threads for torch (default: OMP_NUM_THREADS if set, else the cores this process may use)"""
    from lm2.train.loop import TrainingDiverged
    from lm2.train.recipe import chain_tokens, load_recipe, plan, run_plan

    book = load_recipe(recipe)
    out = Path(out_dir or Path("runs") / book.path.stem)
    if threads is not None:
        overrides = (*overrides, "--train.threads", str(threads))
    runs = plan(book, out, list(overrides), kinds=kinds.split(",") if kinds else None)
    if eval_lengths:
        from lm2.eval.babilong import parse_lengths

        parse_lengths(eval_lengths)  # a bad length is an error now, not after hours of training
        if runs[-1].cfg.data.task != "babilong":
            raise ValueError(f"--eval-lengths evaluates on BABILong, and recipe {book.path.name} trains "
                             f"data.task={runs[-1].cfg.data.task}: evaluate its checkpoints with lm2 eval")
    if dry_run:
        for planned in runs:
            who = "all kinds" if planned.kind is None else planned.kind
            print(f"{planned.phase.name} ({who}, {planned.state()}): {planned.command}")
        return 0
    if no_progress:
        no_progress_bars()
    finals = {}

    def done(planned, trained) -> None:
        if trained is not None and trained.ctx.is_main:
            report(trained)
        finals[planned.kind] = planned  # the last phase of each kind wins

    try:
        run_plan(runs, progress=not no_progress, on_done=done)
    except TrainingDiverged as err:
        raise UserError(str(err)) from None
    print("\nfinal checkpoints, and the tokens each model trained on through all its phases (padding not counted):")
    for kind, planned in finals.items():
        if kind is not None:
            print(f"  {kind:<8} {planned.final_checkpoint}  {chain_tokens(planned):,} tokens")
    if eval_lengths:
        compare_kinds({k: v for k, v in finals.items() if k is not None}, out, eval_lengths, eval_n, no_progress)
    return 0


def compare_kinds(finals: dict, out: Path, lengths: str, n: int, no_progress: bool) -> None:
    """Evaluate each kind's final checkpoint on BABILong (resuming answers already there), then print the kinds
    side by side and plot them with the best constant answer."""
    import json

    from lm2.eval.babilong import majority_baseline
    from lm2.eval.commands import run_babilong
    from lm2.viz.curves import plot_lines

    means = {}
    for kind, planned in finals.items():
        folder = Path(planned.cfg.out_dir).parent / "eval"
        run_babilong(model=str(planned.final_checkpoint), tasks=",".join(planned.cfg.data.babi_tasks),
                     lengths=lengths, n=n, batch_size=16, out=str(folder), resume=True, no_progress=no_progress)
        means[kind] = (folder, json.loads((folder / "summary.json").read_text())["mean"])
    columns = lengths.split(",")
    shares = majority_baseline(next(iter(means.values()))[0])
    floor = sum(shares.values()) / len(shares)
    print(f"\nBABILong accuracy (%), mean over the recipe's tasks, {n} test samples per task and length (seed 0):\n")
    print("| model | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
    for kind, (_, mean) in means.items():
        print(f"| {kind} | " + " | ".join(f"{mean[k]:.1f}" for k in columns) + " |")
    print("| best constant answer | " + " | ".join(f"{floor:.1f}" for _ in columns) + " |")
    path = plot_lines({kind: (columns, [mean[k] for k in columns]) for kind, (_, mean) in means.items()},
                      out / "compare.png", "context length (GPT-2 tokens)", "accuracy (%)",
                      hline=(floor, "best constant answer"), ylim=(0, 100))
    print(f"plot: {path}")


run_train.__doc__ += _TRAIN_DOC.format(shipped=", ".join(shipped_config_names()))
run_recipe.__doc__ = run_recipe.__doc__.format(recipes=", ".join(recipe_names()))
run_demo.__doc__ += _TRAIN_DOC.replace("config: a YAML", "config: (default: the shipped babilong-qa1-demo) a YAML"
                                       ).format(shipped=", ".join(shipped_config_names())) + """
        processes: training processes, data-parallel (DDP over gloo, the threads shared among them), with the same
            global batches and results as one process up to rounding (default: 2 on a machine without a GPU that
            has 2 or more cores, else 1): a tiny model trains faster as two one-thread processes than as one
            two-thread process"""


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
