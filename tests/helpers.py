"""Small builders shared by the tests (imported as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import torch

from lm2 import LM2Config, LM2ForCausalLM

# The paper's memory and the options that change its math (each causal and stream-equivalent like the paper's).
MEMORY_VARIANTS = {
    "paper": {},
    "replace": {"memory_update": "replace"},
    "write_gate": {"memory_write_gate": "token"},
    "write_threshold": {"memory_write_gate": "token", "memory_write_threshold": 0.5, "memory_update": "replace"},
    "write_threshold_straight_through": {"memory_write_gate": "token", "memory_write_threshold": 0.5,
                                         "memory_write_threshold_gradient": "straight_through"},
    "read_scale": {"memory_read_scale": 4.0},
    "slot_keys": {"memory_slot_keys": True},
    "top1": {"memory_write_route": "top1"},
    "shift": {"memory_write_shift": True},
    "key_shift": {"attention_key_shift": True},
    "attention_conv": {"attention_conv": 3},
    "previous_address": {"memory_write_address": "previous", "memory_read_scale": 4.0, "memory_slot_keys": True},
    "query_address": {"memory_write_address": "query", "memory_read_scale": 4.0, "memory_slot_keys": True},
    "lookback_address": {"memory_write_address": "lookback", "memory_write_lookback": 3, "memory_read_scale": 4.0,
                         "memory_write_gate": "token"},
    "lookback_held": {"memory_write_address": "lookback", "memory_write_lookback": 3, "memory_write_lookback_init": 2.0,
                      "memory_write_lookback_learn_bias": False},  # its distance preference a buffer, not a parameter
    "write_after_attention": {"memory_write_after_attention": True, "memory_write_address": "query",
                              "memory_write_gate": "token", "memory_write_shift": True},
    "all": {"memory_update": "replace", "memory_write_gate": "token", "memory_read_scale": 4.0,
            "memory_write": "input", "memory_slot_keys": True, "memory_write_route": "top1",
            "memory_write_shift": True},
}


def tiny_config(**overrides) -> LM2Config:
    fields = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, memory_slots=6, memory_heads=2, memory_layers=2,
                  memory_update_interval=4)
    fields.update(overrides)
    return LM2Config.from_preset("tiny", **fields)


def randomize_memory(model: torch.nn.Module, std: float = 0.3, seed: int = 0) -> None:
    """Give every memory parameter (and the attention convolution) a random non-zero value, so that memory visibly
    shapes the output.

    At initialisation the read output projection is zero and memory changes nothing: a causality or
    streaming test on a fresh model could not fail.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if (".memory." in name and "initial_memory" not in name) or "qkv_conv" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def memory_model(seed: int = 0, **overrides) -> LM2ForCausalLM:
    torch.manual_seed(seed)
    model = LM2ForCausalLM(tiny_config(**overrides)).eval()
    randomize_memory(model, seed=seed)
    return model


def load_script(name: str):
    """A script of scripts/ imported as a module (they are not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EOS = "<eos>"


def char_tokenizer():
    """One token per printable ASCII character (ids 0-94) plus <eos> (95) and <unk> (96): the tiny models'
    vocabulary of 97, with a decoder that concatenates characters, so text round-trips exactly."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    vocab.update({EOS: 95, "<unk>": 96})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, unk_token="<unk>", pad_token=EOS)


RELEASE_LAYOUTS = ("parquet-by-length", "parquet-by-task", "parquet-converted", "arrow", "json-lines", "json-array")


def write_release(samples, root, layout: str = "parquet-by-length"):
    """BABILong samples written as the official release stores them (lm2.data.babilong_release's layouts): one
    split per task and length, the fields question, target, input (context). Returns ``root``."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    groups: dict = {}
    configs: dict = {}  # length -> {task: table}, for the arrow layout
    for s in samples:
        groups.setdefault((s.task, s.length), []).append(s)
    for (task, length), group in groups.items():
        rows = [{"question": s.question, "target": s.target, "input": s.context} for s in group]
        table = pa.Table.from_pylist(rows)
        if layout == "parquet-by-length":  # babilong-1k-samples: <length>/<task>-*.parquet, here in two shards
            (root / length).mkdir(parents=True, exist_ok=True)
            half = max(1, len(rows) // 2)
            pq.write_table(table.slice(0, half), root / length / f"{task}-00000-of-00002.parquet")
            pq.write_table(table.slice(half), root / length / f"{task}-00001-of-00002.parquet")
        elif layout == "parquet-by-task":  # RMT-team/babilong's parquet revisions: <task>/<length>-*.parquet
            (root / task).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, root / task / f"{length}-00000-of-00001.parquet")
        elif layout == "parquet-converted":  # the Hub's refs/convert/parquet branch: <length>/<task>/0000.parquet
            (root / length / task).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, root / length / task / "0000.parquet")
        elif layout == "arrow":  # datasets' save_to_disk of each configuration (a DatasetDict of tasks)
            configs.setdefault(length, {})[task] = table
        elif layout in ("json-lines", "json-array"):  # RMT-team/babilong today: data/<task>/<length>.json
            (root / "data" / task).mkdir(parents=True, exist_ok=True)
            lines = [json.dumps(r) for r in rows]
            text = "\n".join(lines) + "\n" if layout == "json-lines" else "[\n" + ",\n".join(lines) + "\n]\n"
            (root / "data" / task / f"{length}.json").write_text(text)
        else:
            raise ValueError(f"unknown layout {layout!r}")
    if configs:
        import datasets

        for length, tables in configs.items():
            datasets.DatasetDict({t: datasets.Dataset(table) for t, table in tables.items()}).save_to_disk(
                str(root / length))
    return root


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's split of a (context, continuation) pair into token ids, written out as a reference:
    trailing context spaces move to the continuation, and the continuation is what encoding the whole adds."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    return list(ctx), list(whole[len(ctx) :])


@torch.no_grad()
def direct_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context) from one unbatched, unpadded forward pass."""
    ctx, cont = encode_pair(tokenizer, context, continuation)
    ids = torch.tensor([ctx + cont])
    logp = torch.log_softmax(model(ids[:, :-1]).logits[0].float(), dim=-1)
    return sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
