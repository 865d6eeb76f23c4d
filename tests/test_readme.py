"""The README's Python snippets run, so the README cannot rot.

Every ```python block of README.md runs, in order, in one namespace (a later block uses names an earlier one
defined) and in a temporary folder. Sizes shrink through what the snippets read: the Quick start streams TOKENS
tokens (the environment variable; 100,000 in the README, 4096 here), and the SmolLM2 snippet gets, in place of
SmolLM2-135M (``resolve_pretrained`` is replaced; tests/test_pretrained.py loads the real one), a random Llama with
the same 30 blocks and a hidden size that its 9 memory heads divide. What the snippets' comments claim is checked
too.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def tiny_llama(folder: Path):
    """A random LlamaForCausalLM folder shaped like SmolLM2 where the README's snippet depends on it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=101, hidden_size=36, intermediate_size=48, num_hidden_layers=30,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    llama = LlamaForCausalLM(config).eval()
    llama.save_pretrained(folder)
    return llama


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    import lm2.pretrained

    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 2, "a new snippet: make sure this test runs it at a small size"
    quick_start, from_llama = blocks
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOKENS", "4096")
    namespace: dict = {}

    exec(compile(quick_start, "README.md (Quick start)", "exec"), namespace)
    out, model, ids = namespace["out"], namespace["model"], namespace["ids"]
    assert ids.shape == (1, 4096) and type(model).__name__ == "LM2ForCausalLM"  # reloaded through AutoModel
    assert not out.logits.requires_grad  # streamed under no_grad: no activations kept
    with torch.no_grad():  # "same logits as one call" (the reloaded model has the streamed one's weights)
        whole = model(ids).logits[:, -out.logits.shape[1]:]
    torch.testing.assert_close(out.logits, whole, atol=1e-4, rtol=1e-4)

    llama = tiny_llama(tmp_path / "llama")
    monkeypatch.setattr(lm2.pretrained, "resolve_pretrained", lambda name: tmp_path / "llama")
    exec(compile(from_llama, "README.md (from_llama)", "exec"), namespace)
    model = namespace["model"].eval()
    assert model.config.memory_layer_indices() == list(range(30)) and model.config.memory_slots == 128
    x = torch.randint(0, 101, (1, 40))
    with torch.no_grad():  # "logits identical to the Llama until trained"
        torch.testing.assert_close(model(x).logits, llama(x).logits, atol=1e-5, rtol=0)
