"""scripts/fresh_memory.py: a checkpoint copied with its memory back at the start and its backbone as trained."""

from __future__ import annotations

import pytest
import torch

from helpers import load_script, memory_model

from lm2 import LM2ForCausalLM
from lm2.train import checkpoint as ckpt


def _checkpoint(folder, model):
    model.save_pretrained(folder)
    (folder / ckpt.STATE_FILE).write_bytes(b"trainer state")
    (folder / ckpt.CONFIG_FILE).write_text("model: {kind: lm2}\n")
    ckpt.write_manifest(folder)
    return folder


def test_memory_restarts_and_the_backbone_is_kept(tmp_path):
    script = load_script("fresh_memory")
    trained = memory_model(seed=3)  # every memory parameter moved away from its start
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01)  # and the backbone too
    source = _checkpoint(tmp_path / "ckpt-000010", trained)
    names = script.fresh_memory(source, tmp_path / "fresh", seed=5)

    assert ckpt.damage(tmp_path / "fresh") is None
    assert (tmp_path / "fresh" / ckpt.STATE_FILE).read_bytes() == b"trainer state"
    copy = LM2ForCausalLM.from_pretrained(tmp_path / "fresh").eval()
    torch.manual_seed(5)
    start = LM2ForCausalLM(trained.config).state_dict()
    kept = trained.state_dict()
    assert set(names) == {n for n in kept if ".memory." in n} and names
    for name, value in copy.state_dict().items():
        torch.testing.assert_close(value, start[name] if name in names else kept[name], rtol=0, atol=0, msg=name)

    # the read projection is back at zero: the copy answers as its backbone alone, the memory blocks dropped
    backbone = LM2ForCausalLM(trained.config.__class__(**{**trained.config.to_dict(), "memory_layers": 0})).eval()
    missing, unexpected = backbone.load_state_dict(kept, strict=False)
    assert not missing and all(".memory." in n for n in unexpected)
    ids = torch.randint(0, trained.config.vocab_size, (2, 23), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(copy(ids).logits, backbone(ids).logits)
        assert not torch.allclose(trained.eval()(ids).logits, backbone(ids).logits, atol=1e-3)


def test_bad_inputs_are_refused_and_nothing_is_overwritten(tmp_path):
    script = load_script("fresh_memory")
    source = _checkpoint(tmp_path / "ckpt-000010", memory_model())
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists"):
        script.fresh_memory(source, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"

    no_memory = _checkpoint(tmp_path / "vanilla", memory_model(memory_layers=0))
    with pytest.raises(ValueError, match="no memory blocks"):
        script.fresh_memory(no_memory, tmp_path / "out1")
    assert not (tmp_path / "out1").exists()

    (source / "config.json").write_text("{}")  # damaged after its manifest was written
    with pytest.raises(ValueError, match="not an intact"):
        script.fresh_memory(source, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
