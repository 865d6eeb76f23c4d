"""lm2: the reference implementation of LM2, Large Memory Models (Kang et al., 2025, arXiv 2502.06049).

Importing the package registers the ``lm2`` model type with transformers' Auto classes, so that
``AutoModelForCausalLM.from_pretrained(folder)`` loads a saved LM2 model; it does nothing else.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from lm2.configuration_lm2 import PRESETS, LM2Config
from lm2.modeling_lm2 import LM2ForCausalLM, LM2Model

__version__ = "0.1.0"
__all__ = ["LM2Config", "LM2ForCausalLM", "LM2Model", "PRESETS"]


def _register() -> None:
    AutoConfig.register("lm2", LM2Config, exist_ok=True)
    AutoModel.register(LM2Config, LM2Model, exist_ok=True)
    AutoModelForCausalLM.register(LM2Config, LM2ForCausalLM, exist_ok=True)


_register()

import lm2.rmt  # noqa: E402,F401  (registers the RMT baseline's "lm2-rmt" model type)
