"""The golden cases: today's behaviour of lm2's public entry points, computed on small deterministic inputs.

Each ``case_*`` function takes a :class:`Workspace` (a scratch folder plus the tiny runs every evaluation case
shares) and returns a nested dict of plain values (str, int, float, bool, None, lists, dicts) and tensors.
``scripts/record_golden.py`` writes these results to ``tests/golden/<case>.json`` (+ ``<case>.safetensors`` for
tensors); ``tests/test_golden.py`` computes them again and compares (see ``compare``).

Everything runs on the CPU in fp32 with fixed seeds. What the cases call is what a user calls: the model classes
(``forward`` in one call and with the streaming state in pieces, ``lm2.cache.stream``, ``generate``), and the
command line (``lm2 train`` on the YAML files in ``tests/golden/configs`` with dotted overrides, ``lm2 eval
babilong | perplexity | recall | mmlu``, ``lm2 generate``, ``lm2 inspect memory``, ``lm2 model stream``,
``lm2 data ...``, ``lm2 score babilong``), plus the data generators of ``lm2.data``. If a refactor moves or
renames one of these, change the call here, never the recorded values: the point is that the values stay.

Model weights for the logits cases are set *by parameter name* (``seeded_weights``), so they do not depend on
the order in which modules are built; the order of the seeded initialisation is checked separately
(``case_presets``, and every ``lm2 train`` run starts from it).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import random
import shutil
import zlib
from pathlib import Path

import numpy as np
import torch

GOLDEN_DIR = Path(__file__).resolve().parent
CONFIG_DIR = GOLDEN_DIR / "configs"

# Floats (Python floats and floating tensors) are compared with |a - b| <= ATOL + RTOL * |b|; integers, strings,
# booleans, token ids and integer tensors must be equal. 1e-4: the same code on the same machine (an AMD EPYC, one
# thread) gives fp32 logits that differ by up to 2.5e-5 from run to run (the CPU kernels' rounding depends on how
# the buffers are aligned), so a tighter bound fails at random; a change of behaviour moves values far more.
ATOL = 1e-4
RTOL = 1e-4
# Values lm2 itself rounds before writing them get the rounding step as their absolute tolerance (by key).
LOOSE = {"loglikelihoods": 2e-4}  # lm2 eval mmlu writes them rounded to 4 decimals

VOCAB = 48  # vocabulary of the model cases (random token ids)

# The options of tests/helpers.py's MEMORY_VARIANTS as of the recording (copied, so that a change there does not
# change the golden cases), plus the write candidates memory_write input and both.
MEMORY_VARIANTS = {
    "paper": {},
    "replace": {"memory_update": "replace"},
    "write_gate": {"memory_write_gate": "token"},
    "read_scale": {"memory_read_scale": 4.0},
    "slot_keys": {"memory_slot_keys": True},
    "top1": {"memory_write_route": "top1"},
    "shift": {"memory_write_shift": True},
    "key_shift": {"attention_key_shift": True},
    "write_input": {"memory_write": "input"},
    "write_both": {"memory_write": "both"},
    "all": {"memory_update": "replace", "memory_write_gate": "token", "memory_read_scale": 4.0,
            "memory_write": "input", "memory_slot_keys": True, "memory_write_route": "top1",
            "memory_write_shift": True},
}


# ----------------------------------------------------------------------------- small builders


def tiny_fields(**overrides) -> dict:
    fields = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, memory_slots=6, memory_heads=2, memory_layers=2, memory_update_interval=4,
                  sliding_window=8)
    fields.update(overrides)
    return fields


def seeded_weights(model: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Every parameter drawn from a generator seeded by its name: the same name gets the same values in every
    model (so LM2, vanilla and RMT share their backbone exactly) whatever the order modules are built in.
    Norm weights are 1 + noise, the memory's read scale 4 + noise, everything else std * noise; the memory's
    output projection is no longer zero, so memory shapes the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())))
            last = name.rsplit(".", 2)[-2:]
            if "norm" in last[0] and last[-1] == "weight":
                p.copy_(1.0 + 0.1 * noise)
            elif last[-1] == "read_scale":
                p.copy_(4.0 + noise)
            else:
                p.copy_(std * noise)
    return model.eval()


def build_model(name: str):
    """The model of one logits case: an LM2 memory variant, vanilla (no memory blocks) or RMT, weights by name."""
    from lm2 import LM2Config, LM2ForCausalLM
    from lm2.rmt import RMTConfig, RMTForCausalLM

    if name == "vanilla":
        return seeded_weights(LM2ForCausalLM(LM2Config.from_preset("tiny", **tiny_fields(memory_layers=0))))
    if name == "rmt":
        config = RMTConfig.from_preset("tiny", **tiny_fields(memory_layers=0, sliding_window=None),
                                       rmt_memory_tokens=3, rmt_segment_length=7)
        return seeded_weights(RMTForCausalLM(config))
    if name == "paper_no_window":
        return seeded_weights(LM2ForCausalLM(LM2Config.from_preset("tiny", **tiny_fields(sliding_window=None))))
    if name == "paper_layer1":
        return seeded_weights(LM2ForCausalLM(LM2Config.from_preset("tiny", **tiny_fields(memory_layers=[1]))))
    return seeded_weights(LM2ForCausalLM(LM2Config.from_preset("tiny", **tiny_fields(**MEMORY_VARIANTS[name]))))


MODEL_NAMES = [*MEMORY_VARIANTS, "paper_no_window", "paper_layer1", "vanilla", "rmt"]


def random_ids(shape, seed: int, high: int = VOCAB) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def padding_multiple(model) -> int:
    """Left padding by a multiple of this leaves a model's outputs unchanged (LM2: U, RMT: S, vanilla: 1)."""
    config = model.config
    if getattr(config, "rmt_segment_length", None):
        return int(config.rmt_segment_length)
    return int(config.memory_update_interval) if config.memory_layers else 1


def memory_of(state) -> dict:
    """The memory a streaming state carries: LM2's banks per layer, or RMT's memory embeddings."""
    if hasattr(state, "memory_banks"):
        return {f"layer{i}": bank.clone() for i, bank in state.memory_banks().items()}
    return {"rmt_memory": state.memory.clone()}


def digest(values) -> str:
    """sha256 of a sequence of ints or of a string (for long data compared exactly)."""
    if isinstance(values, str):
        data = values.encode("utf-8")
    else:
        data = np.asarray(values, dtype=np.int64).tobytes()
    return hashlib.sha256(data).hexdigest()


def char_tokenizer():
    """One token per printable ASCII character (ids 0-94) plus <eos> (95) and <unk> (96) (tests/helpers.py's,
    copied so that the golden runs do not change with the test helpers)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    vocab.update({"<eos>": 95, "<unk>": 96})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>", pad_token="<eos>")


WORDS = ("mary john sandra daniel went to the kitchen garden office hallway bedroom bathroom took dropped apple "
         "milk football where is it was a long day and the night came slowly over the hills").split()


def corpus_text(seed: int, sentences: int) -> str:
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))).capitalize() + "."
                    for _ in range(sentences))


def cli(*args) -> str:
    """Run ``lm2 ARGS`` in this process; returns its stdout, raises with its stderr if it fails."""
    from lm2.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    if code != 0:
        raise RuntimeError(f"lm2 {' '.join(map(str, args))} exited with {code}: {err.getvalue()[-2000:]}")
    return out.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(row) for row in csv.DictReader(f)]


def pick(record: dict, keys) -> dict:
    return {k: record[k] for k in keys if k in record}


# A recurrent memory with large random weights is chaotic over long inputs: with std 0.3, RMT's and the paper's
# gated update turn a 1e-6 change of the initial memory into O(1) logits within a few hundred to a few thousand
# tokens, so answers would depend on float rounding (the thread count). These runs get smaller weights, measured
# to stay contractive over 3000 tokens (the bounded `replace` update of the shipped options is at any std).
SCRAMBLE_STD = {"lm_rmt": 0.08, "lm": 0.15}


class Workspace:
    """A scratch folder with the char tokenizer, a small text corpus and the tiny training runs (each trained
    once, on first use, through ``lm2 train``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._runs: dict[str, Path] = {}

    @property
    def tokenizer_dir(self) -> Path:
        folder = self.root / "char-tokenizer"
        if not (folder / "tokenizer.json").exists():
            char_tokenizer().save_pretrained(str(folder))
        return folder

    def text(self, name: str) -> Path:
        path = self.root / f"{name}.txt"
        if not path.exists():
            seed, n = {"train": (0, 400), "val": (1, 60)}[name]
            path.write_text(corpus_text(seed, n))
        return path

    # The runs: a config of tests/golden/configs plus overrides (paths, and the options each run varies).
    RUNS = {
        "lm": ("train-lm.yaml", []),
        "lm_rmt": ("train-lm.yaml", ["--model.kind", "rmt", "--model.rmt", "{num_memory_tokens: 2}"]),
        "lm_vanilla": ("train-lm.yaml", ["--model.kind", "vanilla", "--train.steps", "2"]),
        "babilong": ("train-babilong.yaml", []),
        "babilong_story": ("train-babilong.yaml", ["--data.supervise", "story", "--data.fact_loss", "true",
                                                   "--data.curriculum", "[{steps: 2, lengths: [0k]}]",
                                                   "--eval.interval", "0"]),
        "recall": ("train-recall.yaml", []),
        # Training from a checkpoint whose memory shapes the logits (weights by name, `model.init_from`): a few
        # steps from a fresh model, whose memory read starts at zero, hardly depend on the memory at all.
        "lm_init": ("train-lm.yaml", ["--model.init_from", "scrambled:lm", "--train.backbone_lr", "1.0e-3",
                                      "--train.steps", "3", "--eval.interval", "0"]),
        "babilong_init": ("train-babilong.yaml", ["--model.init_from", "scrambled:babilong",
                                                  "--model.freeze_backbone", "true", "--data.curriculum",
                                                  "[{steps: 2, lengths: [0k]}]", "--eval.interval", "0"]),
    }

    def run(self, name: str) -> Path:
        """The out_dir of a finished tiny run."""
        if name not in self._runs:
            config, extra = self.RUNS[name]
            out = self.root / "runs" / name
            args = ["train", CONFIG_DIR / config, "--out_dir", out, "--no-progress"]
            if not config.endswith("recall.yaml"):
                args += ["--data.tokenizer", self.tokenizer_dir]
            if config.endswith("lm.yaml"):
                args += ["--data.source", self.text("train"), "--data.val_source", self.text("val")]
            extra = [str(self.scrambled(a.split(":", 1)[1])) if str(a).startswith("scrambled:") else a for a in extra]
            cli(*args, *extra)
            self._runs[name] = out
        return self._runs[name]

    def checkpoint(self, name: str) -> Path:
        """The run's last checkpoint (ckpt-<step>/)."""
        return sorted(self.run(name).glob("ckpt-*"))[-1]

    def scrambled(self, name: str) -> Path:
        """A copy of the run's last checkpoint (tokenizer, train_config.yaml) with its weights set by name
        (``seeded_weights``): a few steps of training leave a model that answers everything alike, while these
        weights make each answer depend on its prompt, so the evaluation cases see every difference."""
        from transformers import AutoModelForCausalLM

        import lm2  # noqa: F401  (registers the lm2 model types)

        folder = self.root / "scrambled" / name
        if not folder.exists():
            source = self.checkpoint(name)
            shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors", "trainer_state.pt",
                                                                          "manifest.json"))
            model = AutoModelForCausalLM.from_pretrained(source)
            seeded_weights(model, SCRAMBLE_STD.get(name, 0.3)).save_pretrained(folder)
        return folder


# ----------------------------------------------------------------------------- 1. model logits


@torch.no_grad()
def case_model_logits(ws: Workspace) -> dict:
    """Each model: logits of one call; of the same input fed in uneven pieces with the state carried; the last
    logits and the memory after ``lm2.cache.stream``; a left-padded batch; U = 1 (test-time updates)."""
    from lm2.cache import stream

    ids = random_ids((2, 16), seed=1)
    out = {}
    for name in MODEL_NAMES:
        model = build_model(name)
        r: dict = {"full": model(ids).logits}
        state, parts = None, []
        for a, b in ((0, 5), (5, 6), (6, 13), (13, 16)):
            o = model(ids[:, a:b], cache=state, use_cache=True)
            state = o.past_key_values
            parts.append(o.logits)
        r["pieces"] = torch.cat(parts, dim=1)
        state, last = stream(model, ids, 3)
        r["stream_last"] = last
        r["stream_memory"] = memory_of(state)
        r["stream_offset"] = int(state.offset)
        pad = padding_multiple(model)
        if pad < 4:
            pad *= 4
        real = ids[:, :12]
        padded = torch.cat([torch.full((2, pad), 0), real], dim=1)
        padded[0, pad - 4 : pad] = real[0, :4]  # row 0: 4 more real tokens before the same 12
        mask = torch.ones_like(padded)
        mask[1, :pad] = 0
        mask[0, : pad - 4] = 0
        r["padded"] = model(padded, attention_mask=mask).logits[:, pad:]
        if name in ("paper", "all", "key_shift"):
            r["u1"] = model(ids, cache=model.new_cache(1), use_cache=True).logits
        out[name] = r
    return out


@torch.no_grad()
def case_from_llama(ws: Workspace) -> dict:
    """A Llama (weights by name) turned into LM2 with memory in block 1: logits before and after the memory
    is randomised by name."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lm2 import LM2ForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    seeded_weights(llama)
    ids = random_ids((1, 12), seed=2)
    model = LM2ForCausalLM.from_llama(llama, memory_layers=[1], memory_slots=5, memory_heads=2,
                                      memory_update_interval=3).eval()
    fresh = model(ids).logits
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".memory." in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode()))))
    return {"llama": llama(ids).logits, "lm2_fresh": fresh, "lm2_memory": model(ids).logits,
            "config": {k: model.config.to_dict()[k] for k in ("memory_layers", "memory_slots", "memory_heads",
                                                              "memory_update_interval", "tie_word_embeddings")}}


# The config fields as of the recording (LM2Config.to_dict() less transformers_version): a field added later (a
# new option, off by default) is not compared here (what it changes shows in the logits); one removed or renamed
# is ("<missing>").
CONFIG_KEYS = (
    "_name_or_path", "architectures", "attention_bias", "attention_dropout", "attention_key_shift", "bos_token_id",
    "chunk_size_feed_forward", "dtype", "eos_token_id", "head_dim", "hidden_act", "hidden_size", "id2label",
    "initializer_range", "intermediate_size", "is_encoder_decoder", "label2id", "max_position_embeddings",
    "memory_forget_bias", "memory_heads", "memory_layers", "memory_read_scale", "memory_slot_keys", "memory_slots",
    "memory_update", "memory_update_interval", "memory_write", "memory_write_gate", "memory_write_route",
    "memory_write_shift", "mlp_bias", "model_type", "num_attention_heads", "num_hidden_layers",
    "num_key_value_heads", "output_attentions", "output_hidden_states", "pad_token_id", "pretraining_tp",
    "problem_type", "return_dict", "rms_norm_eps", "rope_parameters", "sliding_window", "tie_word_embeddings",
    "use_cache", "vocab_size",
)


def _logit_summary(logits: torch.Tensor) -> dict:
    return {"logsumexp": torch.logsumexp(logits.float(), dim=-1), "argmax": logits.argmax(-1),
            "head": logits[..., :16].contiguous(), "sum": logits.sum(-1)}


@torch.no_grad()
def case_presets(ws: Workspace) -> dict:
    """The presets: their config, and for tiny, small and 40m the seeded initialisation (torch.manual_seed(0),
    then the constructor) as per-parameter sums, the logits of a fixed input and the memory after streaming it;
    for lm2-1.7b the parameter shapes (built on the meta device)."""
    from lm2 import PRESETS, LM2Config, LM2ForCausalLM
    from lm2.cache import stream

    out = {}
    for name in sorted(PRESETS):
        config = LM2Config.from_preset(name)
        values = config.to_dict()
        values = {k: values.get(k, "<missing>") for k in CONFIG_KEYS}
        r: dict = {"config": json.loads(json.dumps(values, sort_keys=True, default=str))}
        if name == "lm2-1.7b":
            with torch.device("meta"):
                model = LM2ForCausalLM(config)
            r["parameters"] = {n: list(p.shape) for n, p in model.named_parameters()}
            r["count"] = sum(p.numel() for p in model.parameters())
        else:
            torch.manual_seed(0)
            model = LM2ForCausalLM(config).eval()
            r["count"] = sum(p.numel() for p in model.parameters())
            r["init"] = {n: [float(p.double().sum()), float(p.double().pow(2).sum())]
                         for n, p in model.named_parameters()}
            ids = random_ids((1, 20), seed=3, high=config.vocab_size)
            r["logits"] = _logit_summary(model(ids).logits)
            state, last = stream(model, ids, 6)
            r["stream_last"] = _logit_summary(last)
            r["stream_memory_norm"] = {k: v.norm(dim=-1) for k, v in memory_of(state).items()}
        out[name] = r
    return out


# ----------------------------------------------------------------------------- 2. generation


def _greedy_margin(model, prompt: torch.Tensor, tokens: list[int]) -> float:
    """The smallest gap between the best and the second-best logit over a greedy continuation (how far the
    recorded tokens are from a tie; recorded for information)."""
    ids = torch.cat([prompt, torch.tensor([tokens[:-1]], dtype=torch.long)], dim=1)
    logits = model(ids).logits[0, prompt.shape[1] - 1 :]
    top = logits.topk(2, dim=-1).values
    return float((top[:, 0] - top[:, 1]).min())


@torch.no_grad()
def case_generate(ws: Workspace) -> dict:
    """lm2.generate.generate_tokens (greedy, U = 1, sampled with a seed, prompt in pieces) and HF generate()
    (one prompt, and a left-padded batch of two) for LM2, vanilla and RMT models with weights by name."""
    from lm2.generate import generate_tokens

    prompt = random_ids((1, 11), seed=4)
    out = {}
    for name in ("paper", "all", "key_shift", "vanilla", "rmt"):
        model = build_model(name)
        r: dict = {}
        greedy = list(generate_tokens(model, prompt, 12))
        r["greedy"] = greedy
        r["greedy_margin"] = round(_greedy_margin(model, prompt, greedy), 4)
        r["greedy_segments_3"] = list(generate_tokens(model, prompt, 12, segment_length=3))
        if name != "vanilla" and name != "rmt":
            r["u1"] = list(generate_tokens(model, prompt, 12, memory_update_interval=1))
        r["sampled"] = list(generate_tokens(model, prompt, 12, temperature=0.8, top_p=0.9, seed=5))
        r["eos_stop"] = list(generate_tokens(model, prompt, 12, eos_token_ids=[greedy[3]]))
        hf = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
        r["hf_generate"] = hf[0, prompt.shape[1] :].tolist()
        pad = padding_multiple(model)
        batch = torch.cat([prompt, torch.cat([torch.zeros(1, pad, dtype=torch.long), prompt[:, pad:]], dim=1)])
        mask = torch.ones_like(batch)
        mask[1, :pad] = 0
        hf = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
        r["hf_generate_batch"] = hf[:, batch.shape[1] :].tolist()
        out[name] = r
    return out


# ----------------------------------------------------------------------------- 3. training


TRAIN_KEYS = ("step", "kind", "stage", "loss", "lr", "grad_norm", "tokens_seen", "skipped")


def _metrics(out_dir: Path) -> list[dict]:
    """metrics.jsonl without the timings (tok_per_s, elapsed_s)."""
    records = []
    for line in (out_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.append({k: v for k, v in record.items() if k not in ("tok_per_s", "elapsed_s")})
    return records


def _batch_digest(batch: dict) -> dict:
    out = {}
    for key, value in batch.items():
        if value is not None:
            out[key] = {"shape": list(value.shape), "sha256": digest(value.flatten().tolist()),
                        "sum": int(value.sum())}
    return out


def _train_case(ws: Workspace, name: str) -> dict:
    from lm2.train.config import load_config
    from lm2.train.data import make_stream, task_tokenizer

    out_dir = ws.run(name)
    cfg = load_config(out_dir / "config.yaml")
    stream = make_stream(cfg, task_tokenizer(cfg), 0, 1, cfg.train.micro_batch_size or cfg.train.batch_size)
    r = {"metrics": _metrics(out_dir),
         "first_batch": [_batch_digest(b) for b in stream.micro_batches(0)],
         "last_batch": [_batch_digest(b) for b in stream.micro_batches(cfg.total_steps() - 1)],
         "checkpoints": sorted(p.name for p in out_dir.iterdir() if p.is_dir() and p.name != "tensorboard")}
    return r


def case_train_lm(ws: Workspace) -> dict:
    """`lm2 train tests/golden/configs/train-lm.yaml` (packed text, LM2), as RMT, as vanilla, and from the LM2
    run's checkpoint with weights by name (`model.init_from`, the backbone at its own lr)."""
    return {name: _train_case(ws, name) for name in ("lm", "lm_rmt", "lm_vanilla", "lm_init")}


def case_train_babilong(ws: Workspace) -> dict:
    """`lm2 train tests/golden/configs/train-babilong.yaml` (answer supervision through a 0k -> 0k+1k
    curriculum, gradient accumulation, accuracy at evaluation), and with whole stories supervised; plus
    `--count-tokens`; and from the run's checkpoint with weights by name, only the memory trained."""
    r = {name: _train_case(ws, name) for name in ("babilong", "babilong_story", "babilong_init")}
    r["count_tokens"] = cli("train", CONFIG_DIR / "train-babilong.yaml", "--count-tokens", "--no-progress",
                            "--data.tokenizer", ws.tokenizer_dir).strip().split(": ", 1)[1]
    return r


def case_train_recall(ws: Workspace) -> dict:
    """`lm2 train tests/golden/configs/train-recall.yaml` (the associative-recall diagnostic)."""
    return {"recall": _train_case(ws, "recall")}


# ----------------------------------------------------------------------------- 4. evaluation


def _babilong_eval(ws: Workspace, model: Path, out: str, *args) -> dict:
    folder = ws.root / "eval" / out
    cli("eval", "babilong", "--model", model, "--out", folder, "--no-progress", *args)
    summary = json.loads((folder / "summary.json").read_text())
    r = {"summary": pick(summary, ("model_kind", "format", "rule", "shots", "n", "seed", "segment_length",
                                   "batch_size", "max_new_tokens", "tasks", "lengths", "accuracy", "samples",
                                   "mean", "mean_qa1_qa5"))}
    for task in summary["tasks"]:
        for length in summary["lengths"]:
            r[f"{task}_{length}.csv"] = read_csv(folder / f"{task}_{length}.csv")
    return r


def case_eval_babilong(ws: Workspace) -> dict:
    """`lm2 eval babilong`: the BABILong run's checkpoint as trained, and with weights by name (format auto =
    finetune, 0k and 1k, batched; the instruction format with one shot); the RMT and vanilla text runs' with
    weights by name; then `lm2 score babilong` on a CSV."""
    r = {
        "trained": _babilong_eval(ws, ws.checkpoint("babilong"), "bl-trained", "--tasks", "qa1", "--lengths", "0k",
                                  "--n", "2", "--batch-size", "2", "--max-new-tokens", "3"),
        "lm2": _babilong_eval(ws, ws.scrambled("babilong"), "bl-lm2", "--tasks", "qa1,qa2", "--lengths", "0k,1k",
                              "--n", "2", "--batch-size", "2", "--segment-length", "64", "--max-new-tokens", "5"),
        "lm2_instruction": _babilong_eval(ws, ws.scrambled("babilong"), "bl-instr", "--tasks", "qa1", "--lengths",
                                          "0k", "--n", "2", "--format", "instruction", "--shots", "1",
                                          "--max-new-tokens", "4", "--segment-length", "128"),
        "rmt": _babilong_eval(ws, ws.scrambled("lm_rmt"), "bl-rmt", "--tasks", "qa3,qa5", "--lengths", "0k", "--n",
                              "3", "--format", "finetune", "--batch-size", "2", "--segment-length", "40",
                              "--max-new-tokens", "5"),
        "vanilla": _babilong_eval(ws, ws.scrambled("lm_vanilla"), "bl-vanilla", "--tasks", "qa6", "--lengths", "0k",
                                  "--n", "3", "--format", "finetune", "--batch-size", "3", "--segment-length", "32",
                                  "--max-new-tokens", "5"),
    }
    folder = ws.root / "score"
    folder.mkdir(exist_ok=True)
    rows = [{"target": "kitchen", "output": "The kitchen.", "question": "Where is Mary?"},
            {"target": "garden", "output": "kitchen", "question": "Where is John?"},
            {"target": "office", "output": "office and garden", "question": "Where is Sandra?"}]
    with open(folder / "answers.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["target", "output", "question"])
        writer.writeheader()
        writer.writerows(rows)
    r["score"] = {rule: cli("score", "babilong", folder / "answers.csv", "--task", "qa1", "--rule", rule).strip()
                  for rule in ("label", "exact")}
    return r


def case_eval_perplexity(ws: Workspace) -> dict:
    """`lm2 eval perplexity` of the LM2, RMT and vanilla text runs on the held-out text, and of the BABILong
    run's checkpoint with weights by name (its memory options, memory that matters)."""
    r = {}
    for run in ("lm", "lm_rmt", "lm_vanilla", "scrambled:babilong"):
        folder = ws.root / "eval" / f"ppl-{run.replace(':', '-')}"
        model = ws.scrambled(run.split(":")[1]) if run.startswith("scrambled:") else ws.checkpoint(run)
        cli("eval", "perplexity", "--model", model, "--data", ws.text("val"), "--seq-len", "64",
            "--max-tokens", "700", "--segment-length", "16", "--bin-size", "8", "--batch-size", "2", "--out", folder,
            "--no-progress")
        result = json.loads((folder / "perplexity.json").read_text())
        r[run] = pick(result, ("model_kind", "seq_len", "segment_length", "max_tokens", "windows", "tokens", "loss",
                               "perplexity", "loss_by_position"))
    return r


def case_eval_recall(ws: Workspace) -> dict:
    """`lm2 eval recall` of the recall run's checkpoint with weights by name (accuracy, where the wrong answers
    go, by query)."""
    folder = ws.root / "eval" / "recall"
    cli("eval", "recall", "--model", ws.scrambled("recall"), "--segments", "0,1,3", "--n", "8", "--batch-size", "3",
        "--out", folder, "--no-progress")
    summary = json.loads((folder / "recall.json").read_text())
    return pick(summary, ("kind", "n", "seed", "segments", "pairs", "queries", "chance", "accuracy", "errors"))


def case_eval_mmlu(ws: Workspace) -> dict:
    """`lm2 eval mmlu` of the LM2 text run on the first questions of two subjects, letter and cloze forms."""
    r = {}
    for form, shots in (("letter", 0), ("cloze", 1)):
        folder = ws.root / "eval" / f"mmlu-{form}"
        cli("eval", "mmlu", "--model", ws.checkpoint("lm"), "--subjects", "abstract_algebra", "anatomy", "--limit",
            "2", "--form", form, "--shots", shots, "--batch-size", "3", "--out", folder, "--no-progress")
        summary = json.loads((folder / f"mmlu_{form}_{shots}shot.json").read_text())
        predictions = [json.loads(line) for line in
                       (folder / f"mmlu_{form}_{shots}shot_predictions.jsonl").read_text().splitlines()]
        r[form] = {"summary": pick(summary, ("model_kind", "form", "shots", "limit", "subjects", "categories",
                                             "levels", "average", "macro_average")),
                   "predictions": predictions}
    return r


PROMPT = ("Mary went to the kitchen. John travelled to the garden. Mary moved to the office.\n"
          "Question: Where is Mary?\nAnswer:")


def case_generate_cli(ws: Workspace) -> dict:
    """`lm2 generate` on the BABILong run's checkpoint with weights by name (greedy, U = 1, prompt in pieces,
    sampled), on the RMT run's, and on the BABILong run's as trained."""
    ckpt = ws.scrambled("babilong")
    common = ["--prompt", PROMPT, "--max-new-tokens", "10", "--no-chat-template"]
    return {
        "greedy": cli("generate", "--model", ckpt, *common),
        "u1": cli("generate", "--model", ckpt, *common, "--memory-update-interval", "1"),
        "segments": cli("generate", "--model", ckpt, *common, "--segment-length", "7"),
        "sampled": cli("generate", "--model", ckpt, *common, "--temperature", "0.9", "--top-p", "0.8", "--seed", "3"),
        "rmt": cli("generate", "--model", ws.scrambled("lm_rmt"), *common),
        "trained": cli("generate", "--model", ws.checkpoint("babilong"), *common),
    }


def case_inspect_memory(ws: Workspace) -> dict:
    """`lm2 inspect memory` on the BABILong run's checkpoint with weights by name: read weights before and after
    test-time updates (K within the prompt, and beyond it into the greedy continuation), gates, slot usage."""
    prompt = ws.root / "prompt.txt"
    prompt.write_text(PROMPT[:60])
    r = {}
    for layer, steps in ((0, None), (1, 70)):
        folder = ws.root / "inspect" / f"layer{layer}"
        args = ["inspect", "memory", "--model", ws.scrambled("babilong"), "--prompt-file", prompt, "--layer", layer,
                "--out", folder, "--top-k", "3", "--labels", "4"]
        if steps is not None:
            args += ["--steps", steps]
        cli(*args)
        report = json.loads((folder / "report.json").read_text())
        weights = np.load(folder / f"read_weights_layer{layer}.npz")
        r[f"layer{layer}"] = {
            "report": {k: v for k, v in report.items() if k not in ("model", "prompt_file", "files")},
            "before": torch.from_numpy(weights["before"].copy()), "after": torch.from_numpy(weights["after"].copy()),
            "token_ids": weights["token_ids"].tolist(),
        }
    return r


def case_model_stream_cli(ws: Workspace) -> dict:
    """`lm2 model stream` (a fresh tiny preset model, a random input streamed): the memory table it prints."""
    text = cli("model", "stream", "--preset", "tiny", "--tokens", "300", "--segment-length", "64", "--window", "32",
               "--seed", "0")
    lines = text.splitlines()
    table = lines[lines.index(next(line for line in lines if line.strip().startswith("layer"))) + 1 :]
    return {"header": lines[0], "table": [line.split() for line in table if line.strip()]}


# ----------------------------------------------------------------------------- 5. data


def case_data_babi(ws: Workspace) -> dict:
    """bAbI qa1-qa10: the first samples of each split (seed 0), a story in bAbI format; `lm2 data babi`."""
    from dataclasses import asdict

    from lm2.data import babi

    r = {}
    for task in babi.TASKS:
        r[task] = {split: [asdict(s) for s in babi.generate_samples(task, 2, split, seed=0)]
                   for split in ("train", "test")}
        r[task]["story"] = babi.format_babi(babi.generate_stories(task, 1, "train", seed=3))
    r["cli_babi"] = cli("data", "babi", "--task", "qa3", "--n", "4", "--format", "babi", "--seed", "2")
    r["cli_jsonl"] = cli("data", "babi", "--task", "qa6", "--n", "3", "--format", "jsonl", "--split", "train")
    return r


def case_data_babilong(ws: Workspace) -> dict:
    """BABILong samples (0k for every task; 1k and 2k for a few, test and train splits), their token ids with GPT-2 and
    the char tokenizer, the instruction prompt, a whole-story example, the scoring rules; `lm2 data babilong`."""
    from dataclasses import asdict

    from lm2.data import babi
    from lm2.data.babilong import build_samples, finetune_example, instruction_prompt, story_finetune_example
    from lm2.data.tokenizers import gpt2_tokenizer
    from lm2.eval.babilong_scoring import exact_match, label_score

    gpt2, chars = gpt2_tokenizer(), char_tokenizer()
    r: dict = {}
    for task in babi.TASKS:
        samples = build_samples(task, "0k", 2, split="test", seed=0)
        r[task] = [{**asdict(s), "gpt2": list(finetune_example(s, gpt2))} for s in samples]
    for task, split, seed in (("qa1", "test", 0), ("qa2", "train", 5)):
        s = build_samples(task, "1k", 1, split=split, seed=seed)[0]
        ids, labels = finetune_example(s, gpt2)
        r[f"{task}_1k_{split}"] = {**{k: v for k, v in asdict(s).items() if k != "context"},
                                   "context_head": s.context[:400], "context_sha256": digest(s.context),
                                   "context_chars": len(s.context), "gpt2_tokens": len(ids),
                                   "gpt2_sha256": digest(ids), "gpt2_answer": [i for i in labels if i != -100],
                                   "char_sha256": digest(finetune_example(s, chars)[0])}
    for task in ("qa1", "qa3", "qa5", "qa8"):  # more long samples, compared by digest only
        for length in ("1k", "2k"):
            r[f"{task}_{length}_digests"] = [
                [digest(s.context), s.question, s.target, len(s.context)]
                for s in build_samples(task, length, 3, split="test", seed=1)]
    sample = build_samples("qa2", "0k", 1, split="test", seed=0)[0]
    r["instruction_prompt"] = instruction_prompt(sample, gpt2, examples=2)
    r["instruction_prompt_0shot"] = instruction_prompt(sample, gpt2, examples=0)
    story = babi.generate_stories("qa1", 1, split="train", seed=7)[0]
    for length in ("0k", "1k"):
        ids, labels = story_finetune_example(story, length, "train", random.Random(0), chars, fact_loss=False)
        r[f"story_{length}"] = {"tokens": len(ids), "ids_sha256": digest(ids), "labels_sha256": digest(labels),
                                "supervised": chars.decode([i for i in labels if i != -100])}
    ids, labels = story_finetune_example(story, "0k", "train", random.Random(0), chars, fact_loss=True)
    r["story_0k_fact_loss"] = {"ids": ids, "labels": labels}
    outputs = ["kitchen", "The kitchen.", "kitchen, garden", "no", "Bathroom", "the answer is yes", "<context>x"]
    r["scores"] = {task: [[label_score(o, t, q, task), exact_match(o, t)] for o in outputs]
                   for task, t, q in (("qa1", "kitchen", "Where is Mary?"), ("qa6", "yes", "Is Mary in the garden?"),
                                      ("qa8", "apple,milk", "What is John carrying?"))}
    path = ws.root / "babilong.jsonl"
    cli("data", "babilong", "--task", "qa4", "--length", "1k", "--n", "2", "--split", "test", "--seed", "1",
        "--out", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    r["cli"] = {"lines": len(lines), "sha256": [digest(line) for line in lines],
                "questions": [json.loads(line)["question"] for line in lines],
                "targets": [json.loads(line)["target"] for line in lines]}
    return r


def case_data_recall(ws: Workspace) -> dict:
    """Recall samples (the default spec and a small one, test seed and another), their ids and the vocabulary."""
    from dataclasses import asdict

    from lm2.data.recall import TEST_SEED, RecallSpec, build_tokenizer, encode, make_sample, make_samples

    r = {}
    for name, spec in (("default", RecallSpec()), ("small", RecallSpec(num_keys=8, num_values=8, num_fillers=8,
                                                                        pairs=2, queries=2, segment_length=8))):
        tok = build_tokenizer(spec)
        samples = make_samples(spec, 2, 2, seed=TEST_SEED) + make_samples(spec, 0, 1, seed=11)
        r[name] = {"vocabulary": spec.vocabulary(), "samples": [{**asdict(s), "ids": encode(s, tok)} for s in samples],
                   "train_sample": asdict(make_sample(spec, 1, random.Random("recall/0/0/0")))}
    return r


def case_data_tokenizer(ws: Workspace) -> dict:
    """`lm2 data tokenizer` (a byte-level BPE of 300 tokens on the small corpus): its size and an encoding."""
    from lm2.data.tokenizers import load_tokenizer

    folder = ws.root / "bpe-300"
    printed = cli("data", "tokenizer", "--corpus", ws.text("train"), "--vocab-size", "300", "--out", folder)
    tok = load_tokenizer(folder)
    text = "Mary went to the kitchen. Where is the apple? Daniel took the milk."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return {"printed": printed.split(";")[0], "size": len(tok), "ids": list(ids), "decoded": tok.decode(ids),
            "eos": tok.eos_token_id}


# ----------------------------------------------------------------------------- the registry


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


# ----------------------------------------------------------------------------- storing and comparing


def _split_tensors(value, path: str, tensors: dict):
    """JSON-ready copy of ``value`` with its tensors moved into ``tensors`` (keyed by their path)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"__tensor__": path, "dtype": str(value.dtype).replace("torch.", ""), "shape": list(value.shape)}
    if isinstance(value, dict):
        return {str(k): _split_tensors(v, f"{path}/{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_tensors(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{path}: cannot store a {type(value).__name__}")


def normalise(value) -> tuple[object, dict]:
    """(JSON-ready structure, {path: tensor}): what is written, and what a fresh result is compared as."""
    tensors: dict = {}
    data = json.loads(json.dumps(_split_tensors(value, "", tensors)))  # tuples -> lists, keys -> str
    return data, tensors


def save(name: str, value, folder: Path = GOLDEN_DIR) -> list[Path]:
    from safetensors.torch import save_file

    data, tensors = normalise(value)
    written = [folder / f"{name}.json"]
    written[0].write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    st = folder / f"{name}.safetensors"
    if tensors:
        save_file(tensors, str(st))
        written.append(st)
    elif st.exists():
        st.unlink()
    return written


def load(name: str, folder: Path = GOLDEN_DIR) -> tuple[object, dict]:
    from safetensors.torch import load_file

    data = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    st = folder / f"{name}.safetensors"
    return data, (load_file(str(st)) if st.exists() else {})


def compare(expected, actual, expected_tensors: dict, actual_tensors: dict, path: str = "",
            atol: float = ATOL) -> list[str]:
    """Every difference between a recorded and a fresh result, as one line each (empty: identical within the
    tolerances: floats |a - b| <= atol + RTOL |b| with atol = ATOL, or LOOSE's for the keys it names;
    everything else exactly)."""
    where = path or "/"
    if isinstance(expected, dict) and "__tensor__" in expected:
        if not (isinstance(actual, dict) and "__tensor__" in actual):
            return [f"{where}: expected a tensor, got {type(actual).__name__}"]
        e, a = expected_tensors[expected["__tensor__"]], actual_tensors[actual["__tensor__"]]
        if e.shape != a.shape or e.dtype != a.dtype:
            return [f"{where}: tensor {a.dtype} {tuple(a.shape)}, recorded {e.dtype} {tuple(e.shape)}"]
        if e.is_floating_point():
            diff = (a.double() - e.double()).abs()
            bad = diff > atol + RTOL * e.double().abs()
            if bool(bad.any()) or not bool(torch.isfinite(a).all() == torch.isfinite(e).all()):
                return [f"{where}: {int(bad.sum())} of {e.numel()} values differ, max |diff| {float(diff.max()):.3g}"]
            return []
        if not torch.equal(e, a):
            return [f"{where}: {int((e != a).sum())} of {e.numel()} values differ (first at "
                    f"{(e != a).nonzero()[0].tolist()})"]
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a dict, got {type(actual).__name__}"]
        out = [f"{path}/{k}: missing" for k in expected if k not in actual]
        out += [f"{path}/{k}: not recorded" for k in actual if k not in expected]
        for k in expected:
            if k in actual:
                out += compare(expected[k], actual[k], expected_tensors, actual_tensors, f"{path}/{k}",
                               LOOSE.get(k, atol))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {type(actual).__name__}"]
        if len(expected) != len(actual):
            return [f"{where}: {len(actual)} items, recorded {len(expected)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            out += compare(e, a, expected_tensors, actual_tensors, f"{path}/{i}", atol)
        return out
    numbers = (int, float)
    if (isinstance(expected, float) or isinstance(actual, float)) and isinstance(expected, numbers) \
            and isinstance(actual, numbers) and not isinstance(expected, bool) and not isinstance(actual, bool):
        if abs(actual - expected) <= atol + RTOL * abs(expected) or (expected != expected and actual != actual):
            return []
        return [f"{where}: {actual!r}, recorded {expected!r} (diff {actual - expected:.3g})"]
    if type(expected) is not type(actual) or expected != actual:
        e, a = repr(expected), repr(actual)
        return [f"{where}: {a[:200]}, recorded {e[:200]}"]
    return []
