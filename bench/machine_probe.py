"""What machine a benchmark ran on, and how fast it multiplies matrices.

``machine_info()`` records the CPU model, core count, the instruction-set flags that decide
bf16 speed (AVX-512 BF16 and AMX tiles, as the kernel lists them and as torch sees them),
memory, library versions, the UTC date and the load average: throughput on a shared machine
is a lower bound, and the load says how much lower.

``matmul_probe()`` times ``torch.matmul`` at the explainer's own shapes (``tokens`` rows
through SmolLM2's 576 -> 1536 MLP projection) and at a square 2048 product, in bf16 and fp32
(or only the dtypes asked for: bf16 without AMX or AVX-512 BF16 is emulated, a product can take
a minute), and reports GFLOP/s (2 M N K per product). The best rate in the LLM's precision
divided by 2 x params FLOP per token is the tokens/s bound a generation engine is measured against.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
LLM_SHAPE = (576, 1536)  # SmolLM2-135M: hidden size -> MLP width, the bulk of its matmul work


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; the platform's processor string elsewhere."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or platform.machine(), set()
    model, flags = "", set()
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.machine(), flags


def _mem_gib() -> float | None:
    path = Path("/proc/meminfo")
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def _torch_sees() -> dict[str, bool]:
    """torch's own probes of the CPU (what oneDNN may use), where this torch has them."""
    out = {}
    for name in ("amx_tile", "avx512_bf16", "avx512"):
        probe = getattr(torch.cpu, f"_is_{name}_supported", None)
        if probe is not None:
            out[name] = bool(probe())
    return out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict:
    import transformers

    model, flags = _cpuinfo()
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": {f: f in flags for f in FLAGS},
        "torch_sees": _torch_sees(),
        "memory_gib": _mem_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_before": load_average(),
    }


def _rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> float:
    """GFLOP/s of (m, k) @ (k, n) in ``dtype``, the best of repeated timed bursts over ``seconds``."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g).to(dtype)
    b = torch.randn(k, n, generator=g).to(dtype)
    torch.matmul(a, b)  # warm-up: oneDNN builds its kernel on first use
    flop = 2.0 * m * n * k
    best, spent = 0.0, 0.0
    while spent < seconds:
        reps, t = 0, time.perf_counter()
        while time.perf_counter() - t < 0.1:
            torch.matmul(a, b)
            reps += 1
        dt = time.perf_counter() - t
        spent += dt
        best = max(best, flop * reps / dt / 1e9)
    return best


def matmul_probe(tokens: int, seconds: float, dtypes: tuple[str, ...] = ("bfloat16", "float32")
                 ) -> dict[str, dict[str, float]]:
    """``{dtype: {shape: GFLOP/s}}`` for ``dtypes`` at the LLM's shape and a square 2048 product."""
    h, f = LLM_SHAPE
    shapes = {f"llm {tokens}x{h}x{f}": (tokens, h, f), "square 2048": (2048, 2048, 2048)}
    return {name: {label: round(_rate(m, k, n, getattr(torch, name), seconds), 1)
                   for label, (m, k, n) in shapes.items()} for name in dtypes}


def best_rate(probes: list[dict[str, dict[str, float]]], dtype: str) -> float | None:
    """The best GFLOP/s any probe of ``dtype`` reached: the machine's bound for that dtype (None: not probed)."""
    rates = [v for p in probes for v in p.get(dtype, {}).values()]
    return max(rates) if rates else None
