"""The explainer's LoRA merged into its base weights, saved as a plain model folder.

A serving engine that runs the round's policy without LoRA kernels (``vllm_engine``: vLLM's CPU
LoRA path is ~4x slower than merged weights, issue 12) loads this folder. The adapter is fixed
while a round explains every row, so one merge per round suffices.

The folder is ``<work_dir>/merged-<digest>``, the digest over the base model's source, the
dtype and the adapter's weights (``get_peft_model_state_dict``): each round's adapter gets its own
folder, and a re-run of the same round (a Dagster retry) finds it complete and reuses it. It is
built from a fresh copy of the base on the CPU, in the explainer's dtype; the explainer itself
is not touched (the PIE update keeps training its adapter). Written atomically, marked last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from peft import PeftModel, get_peft_model_state_dict
from transformers import AutoModelForCausalLM

from recpie_core.explain.llm import peft_wrapping
from recpie_core.io import atomic_write

if TYPE_CHECKING:
    from recpie_core.explain.explainer import Explainer

log = logging.getLogger(__name__)

MERGED_MARK = "recpie_merged.json"  # written last into a merged folder: its presence means complete


def adapter_digest(explainer: Explainer) -> str:
    """16 hex digits of sha256 over the base model's source, the dtype and the adapter's weights."""
    h = hashlib.sha256()
    h.update(f"{explainer.model.get_base_model().name_or_path}|{explainer.model.dtype}".encode())
    for name, t in sorted(get_peft_model_state_dict(explainer.model).items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def merged_model_folder(explainer: Explainer, work_dir: Path) -> Path:
    """``<work_dir>/merged-<digest>``: the base with the explainer's adapter merged in, and the tokenizer."""
    source = explainer.model.get_base_model().name_or_path
    if not source or not Path(source).is_dir() and "/" not in source:
        raise ValueError(f"the explainer's base model has no folder or hub id to reload it from ({source!r}); "
                         "load it with from_pretrained before merging")
    folder = Path(work_dir) / f"merged-{adapter_digest(explainer)}"
    if (folder / MERGED_MARK).is_file():
        log.info("reusing the merged model %s", folder)
        return folder
    dtype = explainer.model.dtype

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".adapter-") as adapter:
            explainer.model.save_pretrained(adapter, safe_serialization=True)
            base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=False)
            with peft_wrapping():
                merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
        merged.save_pretrained(tmp, safe_serialization=True)
        explainer.tokenizer.save_pretrained(tmp)
        (tmp / MERGED_MARK).write_text(json.dumps({"base": str(source), "dtype": str(dtype)}))

    log.info("merging the adapter into %s", folder)
    return atomic_write(folder, write)
