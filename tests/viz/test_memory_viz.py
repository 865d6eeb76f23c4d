"""Memory inspection (lm2/viz/memory.py): read weights are distributions, test-time updates change them only
when there is memory, the probe streams, the gates and summaries are right, the figures are PNGs of the
expected size, and `lm2 inspect memory` / `lm2 generate` run end to end."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch

from helpers import char_tokenizer, memory_model

from lm2.viz.memory import (
    gate_statistics,
    inspect_memory,
    most_attended_tokens,
    plot_gate_statistics,
    plot_read_weights,
    read_weights,
    read_weights_before_after,
    slot_top_tokens,
    slot_usage_entropy,
    update_at_test_time,
)

PROMPT = torch.randint(0, 97, (1, 19), generator=torch.Generator().manual_seed(0))


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's signature and IHDR chunk, without an image library."""
    data = open(path, "rb").read(33)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, "the first chunk of a PNG must be IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("window", [None, 5])
def test_read_weights_are_distributions_over_slots(window):
    model = memory_model(seed=0, sliding_window=window)
    updated = update_at_test_time(model, PROMPT, steps=7)
    for banks in (None, updated.banks):
        weights = read_weights(model, PROMPT, banks)
        assert sorted(weights) == [0, 1]
        for w in weights.values():
            assert w.shape == (19, 6)
            assert (w >= 0).all() and (w <= 1).all()
            np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)


def test_probe_in_segments_equals_one_call():
    model = memory_model(seed=1, sliding_window=4)
    banks = update_at_test_time(model, PROMPT, steps=9).banks
    whole = read_weights(model, PROMPT, banks, segment_length=100)
    pieces = read_weights(model, PROMPT, banks, segment_length=3)
    for layer in whole:
        np.testing.assert_allclose(pieces[layer], whole[layer], atol=1e-6)


def test_after_k_update_steps_the_weights_differ_only_when_there_is_memory():
    model = memory_model(seed=2)
    before, after = read_weights_before_after(model, PROMPT, layer=1, steps=5)
    assert np.abs(after - before).max() > 1e-3
    same_before, same_after = read_weights_before_after(model, PROMPT, layer=1, steps=0)
    np.testing.assert_array_equal(same_before, same_after)  # zero steps: nothing was written
    np.testing.assert_array_equal(same_before, before)
    # A model without memory blocks has no read weights at all: every entry point says so.
    plain = memory_model(seed=2, memory_layers=0)
    for call in (lambda: read_weights(plain, PROMPT), lambda: read_weights_before_after(plain, PROMPT, 0, 5),
                 lambda: update_at_test_time(plain, PROMPT, 5), lambda: gate_statistics(plain, PROMPT),
                 lambda: inspect_memory(plain, PROMPT, 0)):
        with pytest.raises(ValueError, match="no memory blocks"):
            call()
    with pytest.raises(ValueError, match=r"layer 0 has no memory: the memory blocks of this model are \[1\]"):
        read_weights_before_after(memory_model(seed=2, memory_layers=[1]), PROMPT, 0, 5)


def test_k_update_steps_are_the_state_of_per_token_updates():
    from lm2.generate import generate_tokens

    model = memory_model(seed=3)
    state = model(PROMPT[:, :8], memory_update_interval=1).past_key_values  # one write per token
    updated = update_at_test_time(model, PROMPT, steps=8, segment_length=3)
    for layer, bank in state.memory_banks().items():
        torch.testing.assert_close(updated.banks[layer], bank)
    # Beyond the prompt, the steps follow the greedy continuation, generated with U = 1.
    longer = update_at_test_time(model, PROMPT, steps=19 + 4)
    assert longer.continuation == list(generate_tokens(model, PROMPT, 4, memory_update_interval=1))
    state = model(torch.cat([PROMPT, torch.tensor([longer.continuation])], dim=1),
                  memory_update_interval=1).past_key_values
    for layer, bank in state.memory_banks().items():
        torch.testing.assert_close(longer.banks[layer], bank)


def test_gate_statistics_without_a_forget_gate():
    """The "replace" update has no forget gate: its statistics are nan, the others are measured as usual."""
    model = memory_model(seed=4, memory_update="replace", memory_write_gate="token", memory_read_scale=4.0)
    stats = gate_statistics(model, PROMPT)
    for gates in stats.values():
        assert math.isnan(gates["forget"]["mean"])
        assert 0 < gates["input"]["mean"] < 1 and 0 < gates["output"]["mean"] < 1


def test_gate_statistics():
    model = memory_model(seed=4)
    stats = gate_statistics(model, PROMPT)
    assert sorted(stats) == [0, 1]
    for gates in stats.values():
        assert sorted(gates) == ["forget", "input", "output"]
        for g in gates.values():
            assert 0 < g["mean"] < 1 and 0 <= g["std"] < 0.5
    # Block 0's input gate depends only on the embeddings: check it against a direct computation.
    block = model.model.layers[0]
    with torch.no_grad():
        g_in = torch.sigmoid(block.memory.in_gate(block.input_layernorm(model.model.embed_tokens(PROMPT)))).double()
    assert stats[0]["input"]["mean"] == pytest.approx(g_in.mean().item(), abs=1e-6)
    assert stats[0]["input"]["std"] == pytest.approx(g_in.std(unbiased=False).item(), abs=1e-6)


def test_summaries_of_read_weights():
    w = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.0, 0.5]])
    idx, val = slot_top_tokens(w, k=2)
    assert idx.tolist() == [[0, 3], [1, 2], [3, 2]]
    np.testing.assert_allclose(val, [[0.7, 0.5], [0.8, 0.3], [0.5, 0.4]])
    assert most_attended_tokens(w, 2).tolist() == [0, 1]  # strongest single reads: 0.8 (token 1), 0.7 (token 0)
    assert slot_usage_entropy(np.full((5, 4), 0.25)) == pytest.approx(1.0)
    assert slot_usage_entropy(np.eye(4)[[2, 2, 2]]) == pytest.approx(0.0)
    assert 0 < slot_usage_entropy(w) < 1


def test_figures_are_pngs_of_the_expected_size(tmp_path):
    model = memory_model(seed=5)
    ins = inspect_memory(model, PROMPT, layer=0, steps=6, tokens=[f"t{i}" for i in range(19)])
    assert png_size(plot_read_weights(ins.before, ins.after, tmp_path / "a.png", ins.tokens, 0, 6)) == (1200, 600)
    small = plot_read_weights(ins.before, ins.after, tmp_path / "b.png", figsize=(6, 3), dpi=50, label_count=3)
    assert png_size(small) == (300, 150)
    assert png_size(plot_gate_statistics(ins.gates, tmp_path / "g.png")) == (800, 400)


def test_inspect_and_generate_commands(tmp_path, capsys):
    from lm2.cli import main
    from lm2.generate import generate_stream

    model, tok = memory_model(seed=6, sliding_window=8), char_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    prompt = "Mary went to the garden."
    (tmp_path / "prompt.txt").write_text(prompt)
    out = tmp_path / "out"
    assert main(["inspect", "memory", "--model", str(tmp_path / "model"), "--prompt-file",
                 str(tmp_path / "prompt.txt"), "--layer", "1", "--steps", "28", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["layer"] == 1 and report["steps"] == 28 and report["prompt_tokens"] == len(prompt)
    assert len(report["continuation_ids"]) == 28 - len(prompt)
    assert len(report["slot_top_tokens_after"]) == 6 and report["max_abs_change"] > 0
    assert png_size(out / "read_weights_layer1.png") == (1200, 600)
    assert (out / "gates.png").exists() and (out / "report.txt").read_text().startswith("memory block 1")
    with np.load(out / "read_weights_layer1.npz") as arrays:
        assert arrays["before"].shape == arrays["after"].shape == (len(prompt), 6)

    capsys.readouterr()
    assert main(["generate", "--model", str(tmp_path / "model"), "--prompt", prompt, "--max-new-tokens", "8",
                 "--memory-update-interval", "1"]) == 0
    expected = "".join(generate_stream(model, tok, prompt, 8, memory_update_interval=1))
    assert capsys.readouterr().out == expected + "\n"

    assert main(["inspect", "memory", "--model", str(tmp_path / "model"), "--prompt-file",
                 str(tmp_path / "prompt.txt"), "--layer", "5"]) == 2  # a user error, reported in one line
    assert "layer 5 has no memory" in capsys.readouterr().err


def test_labels_are_spread_apart_near_their_rows():
    from lm2.viz.memory import spread

    rows = [3, 4, 5, 40, 98, 99]
    places = spread(rows, gap=2.0, low=0.0, high=100.0)
    assert np.all(np.diff(places) >= 2.0 - 1e-9) and places.min() >= 0 and places.max() <= 100
    assert places[3] == 40  # a label with room stays at its row
    squeezed = spread(range(10), gap=5.0, low=0.0, high=9.0)  # no room for the gap: it shrinks, still in order
    assert np.allclose(np.diff(squeezed), 1.0) and squeezed[0] == 0 and squeezed[-1] == 9


@pytest.mark.parametrize("figsize, dpi", [((12.0, 6.0), 100), ((8.0, 4.0), 80)])
def test_token_labels_never_overprint(figsize, dpi):
    from lm2.viz.memory import read_weights_figure

    rng = np.random.default_rng(0)
    before, after = rng.dirichlet(np.ones(16), size=200), rng.dirichlet(np.ones(16), size=200)
    before[50:60, 3] = after[120:130, 7] = 5.0  # ten adjacent tokens are the most attended of each panel
    tokens = [f"token{i}" if i % 3 else "a long token that is cut short" for i in range(200)]
    fig = read_weights_figure(before, after, tokens, label_count=10, figsize=figsize, dpi=dpi)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes[:2]
    from matplotlib.text import Text

    # the labels' text alone (an annotation's own extent includes its leader line, which reaches the panel)
    boxes = {ax: [Text.get_window_extent(text, renderer) for text in ax.texts] for ax in axes}
    figure_box = fig.bbox
    for ax, own in boxes.items():
        assert len(own) == 10
        for i, box in enumerate(own):
            assert figure_box.x0 <= box.x0 and box.x1 <= ax.get_window_extent().x0  # left of its panel, on the page
            assert not any(box.overlaps(other) for other in own[i + 1:])
            assert not any(box.overlaps(other.get_window_extent()) for other in axes)
    ylabel = axes[0].yaxis.label.get_window_extent(renderer)
    assert not any(ylabel.overlaps(box) for box in boxes[axes[0]])
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_partial_byte_tokens_are_labelled_by_their_bytes():
    from types import SimpleNamespace

    from lm2.data.tokenizers import gpt2_tokenizer
    from lm2.viz.memory import token_labels

    tok = gpt2_tokenizer()
    ids = tok("café 日本 ✓\n")["input_ids"]
    labels = token_labels(tok, ids)
    assert not any("\ufffd" in label for label in labels)
    partial = [label for label, i in zip(labels, ids) if "\ufffd" in tok.decode([i])]
    assert partial and all(re_bytes(label) for label in partial), labels
    assert "".join(labels).count("\\n") == 1  # whitespace made visible
    # SentencePiece's byte fallback names the byte: <0xE6>
    fallback = SimpleNamespace(decode=lambda ids: "\ufffd", convert_ids_to_tokens=lambda i: "<0xE6>")
    assert token_labels(fallback, [7]) == ["\\xe6"]


def re_bytes(label: str) -> bool:
    import re

    return re.search(r"\\x[0-9a-f]{2}", label) is not None


def test_inspect_writes_next_to_the_run_not_into_the_working_folder(tmp_path, monkeypatch, capsys):
    from lm2.cli import main

    model, tok = memory_model(seed=6, sliding_window=8), char_tokenizer()
    checkpoint = tmp_path / "runs" / "exp" / "ckpt-000010"
    for folder in (checkpoint, tmp_path / "plain"):
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    (checkpoint / "train_config.yaml").write_text("out_dir: runs/exp\n")  # what lm2 train writes with a checkpoint
    before = {p: p.read_bytes() for p in checkpoint.iterdir()}
    (tmp_path / "prompt.txt").write_text("Mary went to the garden.")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for model_dir, layer in ((checkpoint, 1), (tmp_path / "plain", 0)):
        assert main(["inspect", "memory", "--model", str(model_dir), "--prompt-file", str(tmp_path / "prompt.txt"),
                     "--layer", str(layer), "--steps", "4"]) == 0
    out = tmp_path / "runs" / "exp" / "memory-inspection" / "ckpt-000010-layer1"
    assert (out / "report.json").is_file() and (out / "read_weights_layer1.png").is_file()
    assert {p: p.read_bytes() for p in checkpoint.iterdir()} == before  # the checkpoint itself is untouched
    assert (work / "runs" / "memory-inspection" / "plain-layer0" / "report.json").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["runs"]  # no ./memory-inspection/
    assert f"wrote {out}/" in capsys.readouterr().out
