"""``LLMConfig``: which causal LLM explains, on what device, with which LoRA.

Apart from ``llm.py`` so that profiles, the code location and a data step
read it without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DTYPE_NAMES = ("float32", "bfloat16", "float16")  # llm.DTYPES maps them to torch dtypes


@dataclass(frozen=True)
class LLMConfig:
    model: str = "smollm2-135m"  # packaged GGUF name | path to a .gguf | HF model id or folder
    dtype: str = "auto"  # "auto" (bf16 on CUDA and AMX CPUs, else fp32) | "float32" | "bfloat16" | "float16"
    device: str = "auto"  # "auto" (cuda if available, else cpu) | "cpu" | "cuda" | "cuda:1" ...
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator (scale = alpha / r)
    lora_dropout: float = 0.05  # dropout on the LoRA input
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # attention projections
    n_soft_tokens: int = 2  # P: soft-prompt vectors prepended per consumer
    system_prompt: str | None = "You explain place recommendations in one or two short sentences."
    # ^ system turn of the chat template (None: the template's own default)

    def __post_init__(self):
        if not self.model:
            raise ValueError("model must name a packaged GGUF, a .gguf path or a Hugging Face model")
        if self.dtype != "auto" and self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPE_NAMES)}, got {self.dtype!r}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")
                                          or self.device == "mps"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:i]' or 'mps', got {self.device!r}")
        if self.lora_r < 1 or self.lora_alpha <= 0:
            raise ValueError("lora_r must be >= 1 and lora_alpha > 0")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        if not self.target_modules:
            raise ValueError("target_modules is empty: LoRA would train nothing")
        if self.n_soft_tokens < 0:
            raise ValueError("n_soft_tokens must be >= 0 (0 disables the soft prompt)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LLMConfig:
        d = dict(d)
        d["target_modules"] = tuple(d.get("target_modules", cls.target_modules))
        return cls(**d)
