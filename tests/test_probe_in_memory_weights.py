"""Models in memory whose weights the probe cannot analyse exactly are refused up front:
quantized (a quantization config, integer parameters) or half precision; float32 passes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from attnsvm.exceptions import InvalidInputError  # noqa: E402
from attnsvm.probe import attention_scores  # noqa: E402
from probe_families import build_model, family_configs  # noqa: E402

IDS = np.arange(101, 111)


@pytest.fixture()
def llama() -> object:
    return build_model("llama", family_configs()["llama"])


def test_float32_passes(llama: object) -> None:
    assert attention_scores(llama, IDS, 0).shape == (4, 10, 10)


def test_quantization_config_is_refused(llama: object) -> None:
    llama.config.quantization_config = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    with pytest.raises(InvalidInputError, match="quantized"):
        attention_scores(llama, IDS, 0)


def test_a_gguf_model_dequantized_at_load_passes(llama: object) -> None:
    # transformers marks a model loaded from GGUF with quant_method gguf; its weights are float32
    llama.config.quantization_config = {"quant_method": "gguf"}
    assert attention_scores(llama, IDS, 0).shape == (4, 10, 10)


def test_integer_weights_are_refused(llama: object) -> None:
    lin = llama.layers[0].self_attn.q_proj
    lin.weight = torch.nn.Parameter(lin.weight.detach().to(torch.int8), requires_grad=False)
    with pytest.raises(InvalidInputError, match="int8"):
        attention_scores(llama, IDS, 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused(llama: object, dtype: object) -> None:
    with pytest.raises(InvalidInputError, match="model.float"):
        attention_scores(llama.to(dtype), IDS, 0)
