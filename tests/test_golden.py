"""Golden outputs: lm2's public entry points give today's results on small deterministic inputs.

Each case of tests/golden/cases.py (model logits in one call and streamed, generation, `lm2 train` losses,
`lm2 eval babilong | perplexity | recall | mmlu`, `lm2 generate`, `lm2 inspect memory`, the data generators) is
computed again and compared with what scripts/record_golden.py recorded in tests/golden/: floats within
|a - b| <= 1e-4 + 1e-4 |b| (values lm2 rounds itself: within their rounding step), token ids, text and every
other value exactly. A failure lists each value that moved. Regenerate the files only for a deliberate behaviour
change (see scripts/record_golden.py); a refactor that moves an entry point changes the call in cases.py, not
the recorded values.
"""

from __future__ import annotations

import pytest
import torch

from golden import cases


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The scratch folder and tiny runs shared by the cases, on one thread (as recorded)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield cases.Workspace(tmp_path_factory.mktemp("golden"))
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(cases.CASES))
def test_golden(name, workspace):
    expected, expected_tensors = cases.load(name)
    actual, actual_tensors = cases.normalise(cases.CASES[name](workspace))
    differences = cases.compare(expected, actual, expected_tensors, actual_tensors)
    assert not differences, (f"{name}: {len(differences)} values differ from tests/golden/{name}.*:\n  "
                             + "\n  ".join(differences[:40]))


def test_every_case_is_recorded_and_every_recording_has_a_case():
    recorded = {p.stem for p in cases.GOLDEN_DIR.glob("*.json")}
    assert recorded == set(cases.CASES)
    assert {p.stem for p in cases.GOLDEN_DIR.glob("*.safetensors")} <= recorded
    size = sum(p.stat().st_size for p in cases.GOLDEN_DIR.iterdir() if p.suffix in (".json", ".safetensors"))
    assert size < 1_000_000, f"the golden files take {size:,} bytes: keep them under 1 MB"
