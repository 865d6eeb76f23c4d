"""Every command, fed what a careless or hostile user would give it: each case must end with exit code 2, one line
on stderr naming the problem, no traceback, and every file that was there before unchanged.

The CLI runs in-process (``lm2.cli.main``), on one tiny model folder and a few prepared files, so the whole
suite takes seconds. The count of cases is what README.md reports ("N cases, N clean").
"""

from __future__ import annotations

import contextlib
import shlex

import pytest

from lm2.cli import main

BINARY = bytes(range(256)) * 4  # not UTF-8, not YAML, not a CSV


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder holding a tiny LM2 model folder, damaged copies of it, a training config, and bad files."""
    import shutil

    from helpers import char_tokenizer, tiny_config

    from lm2 import LM2ForCausalLM

    w = tmp_path_factory.mktemp("bad-inputs")
    model = w / "model"
    LM2ForCausalLM(tiny_config(sliding_window=8)).save_pretrained(model)
    char_tokenizer().save_pretrained(str(model))
    for name, damage in (("truncated", lambda b: b[: len(b) // 2]), ("garbled", lambda b: b[:8] + BINARY)):
        shutil.copytree(model, w / name)
        (w / name / "model.safetensors").write_bytes(damage((model / "model.safetensors").read_bytes()))
    shutil.copytree(model, w / "badconfig")
    (w / "badconfig" / "config.json").write_bytes(BINARY)
    (w / "tok").mkdir()
    char_tokenizer().save_pretrained(str(w / "tok"))
    (w / "good.yaml").write_text(f"out_dir: {w}/runs/fresh\ndata: {{task: lm, tokenizer: {w}/tok, "
                                 f"source: {w}/text.txt, val_source: {w}/text.txt}}\n"
                                 "train: {steps: 2, batch_size: 2}\n")
    (w / "text.txt").write_text("Mary went to the kitchen. " * 20)
    (w / "recipe.yaml").write_text(f"config: {w}/good.yaml\nkinds: [lm2, vanilla]\n"
                                   "phases: [{name: a, shared: true, set: {model.kind: vanilla}}, {name: b}]\n")
    (w / "prompt.txt").write_text("Where is Mary?")
    (w / "empty.txt").write_text("")
    (w / "empty.yaml").write_text("")
    (w / "comments.yaml").write_text("# nothing but a comment\n")
    (w / "list.yaml").write_text("- model\n- train\n")
    (w / "broken.yaml").write_text("train: {lr: [1e-3\n")
    (w / "binary.bin").write_bytes(BINARY)
    (w / "afile").write_text("a file, not a folder\n")
    (w / "unterminated.csv").write_text('target,output,question\nkitchen,"the kitchen,Where is Mary?\n')
    (w / "columns.csv").write_text("answer,reply\nkitchen,kitchen\n")
    (w / "header.csv").write_text("target,output,question\n")
    # an earlier run (what --resume or --overwrite is for), and one whose only checkpoint has lost its manifest
    for run in ("runs/earlier", "runs/damaged"):
        (w / run / "ckpt-000002").mkdir(parents=True)
        (w / run / "metrics.jsonl").write_text('{"step": 1, "kind": "train", "loss": 5.0}\n')
    # an evaluation folder that already holds answers
    (w / "answers").mkdir()
    (w / "answers" / "qa1_0k.csv").write_text("target,output,question\nkitchen,kitchen,Where is Mary?\n")
    return w


@contextlib.contextmanager
def locked(folder):
    from lm2.outdir import hold

    with hold(folder, "lm2 (another run)"):
        yield


T = "train {w}/good.yaml --no-progress"
M = "--model {w}/model --no-progress"
E_BAB = f"eval babilong {M} --tasks qa1 --lengths 0k --n 1"
E_PPL = f"eval perplexity {M} --data {{w}}/text.txt --seq-len 16 --max-tokens 32"
E_MMLU = f"eval mmlu {M} --limit 1 --subjects anatomy"
E_H = f"eval harness {M}"
G = "generate --model {w}/model --prompt hi --max-new-tokens 2"
IM = "inspect memory --model {w}/model --prompt-file {w}/prompt.txt --layer 0 --out {w}/inspected"

# (command line, what the one line must contain, a folder to hold locked while it runs)
CASES = [
    # ---- lm2 train: config files
    ("train {w}/missing.yaml", "missing.yaml does not exist", None),
    ("train {w}/empty.yaml", "empty.yaml is empty", None),
    ("train {w}/comments.yaml", "comments.yaml is empty", None),
    ("train {w}/binary.bin", "binary.bin is not UTF-8", None),
    ("train {w}/broken.yaml", "broken.yaml is not valid YAML (line 2", None),
    ("train {w}/list.yaml", "a config is a YAML mapping", None),
    ("train {w}", "does not exist", None),
    # ---- lm2 train: fields and values
    (f"{T} --train.lrr 1", "unknown config field train.lrr", None),
    (f"{T} --model.config.memory_slotz 4", "unknown config field model.config.memory_slotz", None),
    (f"{T} --model.rmt.tokens 4", "unknown config field model.rmt.tokens", None),
    (f"{T} --optimizer.lr 1", "unknown config field optimizer", None),
    (f"{T} --train.lr -1", "train.lr=-1.0 is invalid", None),
    (f"{T} --train.lr [1", "override --train.lr is not valid YAML", None),
    (f"{T} --train.lr", "override --train.lr has no value", None),
    (f"{T} train.lr 1", "override 'train.lr' is invalid", None),
    (f"{T} --train.batch_size eight", "train.batch_size='eight' is invalid", None),
    (f"{T} --train.batch_size 0", "train.batch_size=0 is invalid", None),
    (f"{T} --train.steps -3", "train.steps=-3 is invalid for data.task=lm", None),
    (f"{T} --train.skip_nonfinite -1", "train.skip_nonfinite=-1 is invalid", None),
    (f"{T} --train.betas [0.9]", "train.betas", None),
    (f"{T} --train.min_lr_ratio 2", "train.min_lr_ratio", None),
    (f"{T} --train.cooldown_steps -1", "train.cooldown_steps=-1 is invalid", None),
    (f"{T} --train.precision fp8", "train.precision", None),
    (f"{T} --model.config.memory_heads 5", "memory_heads=5 is invalid", None),
    (f"{T} --model.config.sliding_window 0", "sliding_window=0 is invalid", None),
    (f"{T} --model.preset huge", "model.preset='huge' is invalid", None),
    (f"{T} --data.segment_length 0", "data.segment_length=0 is invalid", None),
    (f"{T} --eval.batch_size 0", "eval.batch_size=0 is invalid", None),
    (f"{T} --checkpoint.keep_last 0", "checkpoint.keep_last=0 is invalid", None),
    (f"{T} --data.task babilong --data.babi_tasks [qa99]", "data.babi_tasks", None),
    (f"{T} --data.task babilong --data.curriculum '[{{steps: 0, lengths: [0k]}}]'", "data.curriculum[0].steps", None),
    (f"{T} --data.task babilong --data.curriculum '[{{steps: 2, lengths: [3q]}}]'", "data.curriculum[0].lengths", None),
    (f"{T} --data.task babilong --eval.lengths [3q]", "eval.lengths", None),
    (f"{T} --data.task babilong --data.curriculum '[{{steps: 2, lengths: [0k], one_point_at: [1k]}}]'",
     "data.curriculum[0].one_point_at=['1k'] is invalid", None),
    (f"{T} --data.task babilong --data.curriculum "
     f"'[{{steps: 2, lengths: [0k], one_point_at: [0k], one_point: first}}]'",
     "data.curriculum[0].one_point='first' is invalid", None),
    (f"{T} --data.task babilong --data.curriculum '[{{steps: 2, lengths: [0k], one_point: last}}]'",
     "data.curriculum[0].one_point='last' chooses the question point kept at the lengths of one_point_at", None),
    (f"{T} --data.task babilong --data.curriculum '[{{steps: 2, lengths: [0k], ask_at_end: true}}]'",
     "data.curriculum[0].ask_at_end=True is invalid", None),
    (f"{T} --data.task babilong --data.curriculum '[{{steps: 2, lengths: [0k], one_point_at: [0k]}}]'",
     "data.curriculum[0].one_point_at keeps one question point of a story; it needs data.supervise=story", None),
    # ---- lm2 train: the out_dir
    (f"{T} --out_dir {{w}}/afile", "afile is a file", None),
    (f"{T} --out_dir {{w}}/afile/run", "afile is a file", None),
    (f"{T} --out_dir /proc/lm2-run", "/proc/lm2-run cannot be created", None),
    (f"{T} --out_dir {{w}}/runs/earlier", "holds a run (ckpt-000002, metrics.jsonl): continue it with --resume", None),
    (f"{T} --out_dir {{w}}/runs/earlier --resume --overwrite", "contradict", None),
    (f"{T} --out_dir {{w}}/runs/damaged --resume", "no complete checkpoint", None),
    (f"{T} --out_dir {{w}}/runs/empty --resume", "no complete checkpoint", None),
    (f"{T} --out_dir {{w}}/runs/busy", "is in use by lm2 (another run) (pid", "runs/busy"),
    ("train {w}/good.yaml --init-from {w}/missing-model", "missing-model' is neither a known model name", None),
    ("demo --config {w}/missing.yaml", "missing.yaml does not exist", None),
    # ---- lm2 eval: models
    ("eval babilong --model {w}/missing-model --tasks qa1 --lengths 0k --n 1", "missing-model", None),
    ("eval babilong --model {w}/truncated --tasks qa1 --lengths 0k --n 1", "truncated/model.safetensors", None),
    ("eval babilong --model {w}/garbled --tasks qa1 --lengths 0k --n 1", "garbled/model.safetensors", None),
    ("eval babilong --model {w}/badconfig --tasks qa1 --lengths 0k --n 1", "badconfig", None),
    ("eval perplexity --model {w}/truncated --data {w}/text.txt", "truncated/model.safetensors", None),
    ("eval mmlu --model {w}/afile", "afile", None),
    # ---- lm2 eval: values
    (f"{E_BAB} --batch-size 0 --out {{w}}/ev", "--batch-size: 0 is invalid", None),
    (f"{E_BAB} --n abc", "--n: 'abc' is not an integer", None),
    (f"{E_BAB} --n 0", "--n: 0 is invalid", None),
    (f"{E_BAB} --max-new-tokens 0", "--max-new-tokens: 0 is invalid", None),
    (f"{E_BAB} --segment-length -4", "--segment-length: -4 is invalid", None),
    (f"{E_BAB} --shots -1", "--shots: -1 is invalid", None),
    (f"{E_BAB} --format chat", "--format: invalid choice", None),
    ("eval babilong --model {w}/model --tasks qa99 --lengths 0k", "qa99", None),
    ("eval babilong --model {w}/model --tasks qa1 --lengths 3q", "3q", None),
    (f"{E_BAB} --device cuda:7", "--device cuda:7", None),
    (f"{E_BAB} --device tpu", "--device", None),
    (f"{E_PPL} --seq-len 0", "--seq-len: 0 is invalid", None),
    (f"{E_PPL} --bin-size 0", "--bin-size: 0 is invalid", None),
    (f"{E_MMLU} --limit 0", "--limit: 0 is invalid", None),
    (f"{E_MMLU} --batch-size -1", "--batch-size: -1 is invalid", None),
    (f"{E_MMLU} --check-lm-eval", "--check-lm-eval is gone: lm2 eval mmlu now scores through lm-evaluation-harness",
     None),
    # ---- lm2 eval: input files and output folders
    (f"eval perplexity {M} --data {{w}}/missing.txt", "missing.txt", None),
    (f"eval perplexity {M} --data {{w}}/binary.bin", "binary.bin", None),
    (f"eval perplexity {M} --data {{w}}/empty.txt", "empty.txt", None),
    (f"{E_BAB} --out {{w}}/afile", "afile is a file", None),
    (f"{E_BAB} --out {{w}}/afile/ev", "afile is a file", None),
    (f"{E_PPL} --out {{w}}/afile", "afile is a file", None),
    (f"{E_MMLU} --out {{w}}/afile", "afile is a file", None),
    (f"{E_BAB} --out {{w}}/answers", "already holds answers", None),
    (f"{E_BAB} --out {{w}}/busy-eval", "is in use by lm2 (another run)", "busy-eval"),
    (f"{E_BAB} --data {{w}}/missing-release", "does not exist: download the official BABILong release", None),
    (f"{E_BAB} --data {{w}}/afile", "afile is a file", None),
    (f"{E_BAB} --data {{w}}/answers", "holds no BABILong data lm2 can read (found qa1_0k.csv)", None),
    (f"{E_H} --tasks ,", "no tasks in ','", None),
    (f"{E_H} --tasks arc_easy --limit 0", "--limit: 0 is invalid", None),
    (f"{E_H} --tasks arc_easy --include-path {{w}}/missing-tasks", "missing-tasks is not a folder", None),
    (f"{E_PPL} --out {{w}}/busy-eval", "is in use by lm2 (another run)", "busy-eval"),
    # ---- lm2 generate
    (f"{G} --memory-update-interval 0", "--memory-update-interval: 0 is invalid", None),
    (f"{G} --max-new-tokens -1", "--max-new-tokens: -1 is invalid", None),
    (f"{G} --top-p 0", "top_p=0.0 is invalid", None),
    (f"{G} --temperature -1", "temperature=-1.0 is invalid", None),
    (f"{G} --segment-length 0", "--segment-length: 0 is invalid", None),
    ("generate --model {w}/model --prompt-file {w}/missing.txt", "missing.txt", None),
    ("generate --model {w}/model --prompt-file {w}/binary.bin", "binary.bin is not UTF-8", None),
    ("generate --model {w}/truncated --prompt hi", "truncated/model.safetensors", None),
    ("generate --model {w}/garbled --prompt hi", "garbled/model.safetensors", None),
    ("generate --model {w}/model", "one of the arguments --prompt --prompt-file is required", None),
    # ---- lm2 inspect memory
    (f"{IM[:-len('--out {w}/inspected')]}--out {{w}}/afile", "afile is a file", None),
    (f"{IM} --layer 7", "layer 7 has no memory", None),
    (f"{IM} --steps 0", "--steps: 0 is invalid", None),
    ("inspect memory --model {w}/model --prompt-file {w}/empty.txt --layer 0 --out {w}/i2", "holds no tokens", None),
    ("inspect memory --model {w}/model --prompt-file {w}/binary.bin --layer 0 --out {w}/i2", "binary.bin is not UTF-8",
     None),
    ("inspect memory --model {w}/truncated --prompt-file {w}/prompt.txt --layer 0", "truncated/model.safetensors",
     None),
    # ---- lm2 model stream
    ("model stream --tokens 0", "--tokens: 0 is invalid", None),
    ("model stream --tokens 64 --segment-length 0", "--segment-length: 0 is invalid", None),
    ("model stream --tokens 64 --preset huge", "--preset 'huge'", None),
    ("model stream --tokens 64 --preset {w}/truncated", "truncated/model.safetensors", None),
    # ---- lm2 data
    ("data babi --task qa99", "qa99", None),
    ("data babi --task qa1 --n -1", "--n: -1 is invalid", None),
    ("data babi --task qa1 --n 2 --out {w}/afile/x.txt", "afile", None),
    ("data babi --task qa1 --n 2 --out {w}/answers", "answers", None),
    ("data babilong --task qa1 --length 3q --out {w}/x.jsonl", "3q", None),
    ("data babilong --task qa1 --length 0k --n 1 --out {w}/answers", "answers", None),
    ("data babilong --task qa1 --length 0k --n 1 --out {w}/afile/x.jsonl", "afile", None),
    ("data tokenizer --corpus {w}/missing.txt --vocab-size 300 --out {w}/t2", "missing.txt", None),
    ("data tokenizer --corpus {w}/text.txt --vocab-size 0 --out {w}/t2", "--vocab-size: 0 is invalid", None),
    ("data tokenizer --corpus {w}/text.txt --vocab-size 300 --out {w}/afile", "afile", None),
    ("data tokenizer --corpus {w}/binary.bin --vocab-size 300 --out {w}/t2", "binary.bin", None),
    # ---- lm2 score babilong
    ("score babilong {w}/missing.csv --task qa1", "missing.csv", None),
    ("score babilong {w}/unterminated.csv --task qa1", "unterminated.csv", None),
    ("score babilong {w}/binary.bin --task qa1", "binary.bin", None),
    ("score babilong {w}/columns.csv --task qa1", "missing column", None),
    ("score babilong {w}/header.csv --task qa1", "no rows", None),
    ("score babilong {w}/header.csv --task qa99", "qa99", None),
    # ---- lm2 recipe
    ("recipe {w}/missing-recipe.yaml", "missing-recipe.yaml does not exist (the shipped recipes", None),
    ("recipe {w}/binary.bin", "binary.bin is not valid YAML", None),
    ("recipe {w}/list.yaml", "a recipe is a YAML mapping", None),
    ("recipe {w}/good.yaml", "a training config? give it to lm2 train", None),
    ("recipe {w}/recipe.yaml --out-dir {w}/runs/r --kinds lm2,gpt", "gpt is not a model kind", None),
    ("recipe {w}/recipe.yaml --out-dir {w}/runs/r --b.train.lr -1", "phase b (lm2): config field train.lr", None),
    ("recipe {w}/recipe.yaml --out-dir {w}/runs/r --c.train.lr 1", "override --c.train.lr is invalid", None),
    ("recipe {w}/recipe.yaml --out-dir {w}/runs/r --out_dir x", "give it as --out-dir", None),
    ("recipe {w}/recipe.yaml --out-dir {w}/runs/r --no-progress", "is in use by lm2 (another run)", "runs/r/a"),
    # ---- --threads (every command)
    (f"{T} --threads 0", "--threads: 0 is invalid", None),
    (f"{E_BAB} --threads 0", "--threads: 0 is invalid", None),
    ("model stream --tokens 64 --threads many", "--threads: 'many' is not an integer", None),
    # ---- the command line itself
    ("train", "the following arguments are required: config", None),
    ("eval babilong --tasks qa1", "the following arguments are required: --model", None),
    ("frobnicate", "invalid choice: 'frobnicate'", None),
]


def snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("line, expected, busy", CASES, ids=[c[0].replace("{w}/", "") for c in CASES])
def test_bad_input_is_one_clear_line(world, line, expected, busy, capsys, monkeypatch):
    monkeypatch.delenv("LM2_DEBUG", raising=False)
    monkeypatch.chdir(world)  # default output folders (runs/eval/...) land in the world, where they are checked
    before = snapshot(world)
    argv = shlex.split(line.replace("{w}", str(world)))
    with locked(world / busy) if busy else contextlib.nullcontext():
        code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    after = snapshot(world)
    assert {p for p in before if after.get(p) != before[p]} == set()  # nothing that was there changed or went
    assert set(after) == set(before)  # and nothing was left behind


def test_readme_reports_the_count_of_cases():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"{len(CASES)} cases, {len(CASES)} clean" in readme
