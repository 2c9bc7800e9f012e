"""Benchmark: Google Local review ingestion against ``zcat FILE > /dev/null``.

Targets (from the ingestion issue), on a 10-million-line gzipped review file with
quarantine on: peak RSS under 1 GB and at least 0.8x the speed of zcat. Polars'
``scan_ndjson`` (which keeps no rejected lines) is timed too, for scale.

    .venv/bin/python bench/bench_ingest.py                 # 10M lines, cached in /tmp
    .venv/bin/python bench/bench_ingest.py --lines 500000  # a quick run

The input is generated once (realistic review lines in the format of the UCSD files,
written by Python's json.dumps, about 0.1% bad lines of every kind) and cached. Each
contender runs in its own subprocess, so peak RSS is that process's alone
(``resource.getrusage(RUSAGE_CHILDREN)`` after it exits). The ratio printed is
``zcat seconds / contender seconds``: 1.0 means as fast as zcat, higher is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAD_RATE = 0.001   # fraction of lines that are bad, spread over the kinds below
BAD_KINDS = ["malformed", "not_object", "rating_text", "rating_range", "missing_field",
             "time_text", "blank", "non_utf8", "duplicate"]
WORDS = ("great food friendly staff service place clean price parking coffee pizza dentist "
         "nice slow fast amazing terrible ok good bad love recommend again never always "
         "wait time order table manager helpful rude delicious fresh cold hot busy quiet "
         "store shop selection prices reasonable expensive cheap park trail view kids").split()
ACCENTED = ["café", "naïve", "jalapeño", "crème brûlée", "smörgåsbord", "😀", "👍", "🍕", "日本料理"]


def _text(rng: random.Random) -> str | None:
    if rng.random() < 0.45:
        return None
    n = max(1, int(rng.lognormvariate(3.0, 0.9)))          # words; median ~20, long tail
    words = rng.choices(WORDS, k=min(n, 700))
    if rng.random() < 0.1:
        words.append(rng.choice(ACCENTED))
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.05:
        text = f"(Translated by Google) {text}\n\n(Original)\n{text}"
    return text


def review_line(rng: random.Random, i: int, n_users: int, n_places: int) -> dict:
    pics = None
    if rng.random() < 0.04:
        pics = [{"url": [f"https://lh5.googleusercontent.com/p/AF1Qip{rng.getrandbits(128):032x}"
                         "=w150-h150-k-no-p"]} for _ in range(rng.randint(1, 4))]
    resp = None
    if rng.random() < 0.1:
        resp = {"time": 1_500_000_000_000 + rng.getrandbits(36), "text": "Thank you for your review!"}
    return {
        "user_id": str(100_000_000_000_000_000_000 + rng.randrange(n_users) * 7919),
        "name": rng.choice(["Jordan Adams", "Kelly Ju", "María José", "Li Wei", "Sam", "Ana Lúcia",
                            "Chris O'Neil", "Dee \"DJ\" Jones"]),
        "time": 1_300_000_000_000 + i * 31 + rng.randrange(31),   # unique per line
        "rating": rng.choices([1, 2, 3, 4, 5], weights=[8, 4, 9, 22, 57])[0],
        "text": _text(rng),
        "pics": pics,
        "resp": resp,
        "gmap_id": f"0x{rng.randrange(n_places) * 2654435761 % (1 << 60):x}:0x{rng.getrandbits(60):x}",
    }


def bad_line(rng: random.Random, kind: str, good: str, earlier: list[bytes], ensure_ascii: bool) -> bytes:
    if kind == "malformed":
        return good[: rng.randrange(5, len(good) - 1)].encode()
    if kind == "not_object":
        return rng.choice([b"null", b"[1, 2, 3]", b'"review"', b"42"])
    if kind == "rating_text":
        return good.replace('"rating": ', '"rating": "five", "x": ', 1).encode()
    if kind == "rating_range":
        return good.replace('"rating": ', f'"rating": {rng.choice([0, 6, -1, 10])}, "x": ', 1).encode()
    if kind == "missing_field":
        field = rng.choice(["user_id", "gmap_id", "rating", "time"])
        row = json.loads(good)
        del row[field]
        return json.dumps(row, ensure_ascii=ensure_ascii).encode()
    if kind == "time_text":
        return good.replace('"time": ', '"time": "yesterday", "x": ', 1).encode()
    if kind == "blank":
        return b""
    if kind == "non_utf8":
        return good.encode().replace(b'"name": "', b'"name": "\xff\xfe', 1)
    if kind == "duplicate":
        return rng.choice(earlier) if earlier else good.encode()
    raise ValueError(kind)


def generate(path: Path, lines: int, seed: int = 0, bad_rate: float = BAD_RATE, ensure_ascii: bool = True) -> None:
    """Write ``lines`` review lines to ``path`` (through ``gzip -6``, as the UCSD files), atomically.

    ``ensure_ascii=False`` writes non-ASCII text as raw UTF-8 instead of ``\\u`` escapes
    (about 30% of the lines then hold non-ASCII bytes).
    """
    rng = random.Random(seed)
    n_users, n_places = max(10, lines // 8), max(10, lines // 40)
    tmp = path.with_name(path.name + ".partial")
    earlier: list[bytes] = []
    with open(tmp, "wb") as fh:
        gz = subprocess.Popen(["gzip", "-6", "-c"], stdin=subprocess.PIPE, stdout=fh)
        buf: list[bytes] = []
        for i in range(lines):
            good = json.dumps(review_line(rng, i, n_users, n_places), ensure_ascii=ensure_ascii)
            if rng.random() < bad_rate:
                line = bad_line(rng, rng.choice(BAD_KINDS), good, earlier, ensure_ascii)
            else:
                line = good.encode()
                if len(earlier) < 1000 and rng.random() < 0.01:
                    earlier.append(line)
            buf.append(line)
            if len(buf) >= 10_000:
                gz.stdin.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            gz.stdin.write(b"\n".join(buf) + b"\n")
        gz.stdin.close()
        if gz.wait() != 0:
            raise RuntimeError("gzip failed")
    os.replace(tmp, path)


def timed(cmd: list[str]) -> tuple[float, int, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS in bytes, CPU seconds user+system, stdout)."""
    # RUSAGE_CHILDREN covers every waited-for child so far: run each command through a
    # small wrapper process so its own maximum is reported alone.
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n"
               "dt = time.perf_counter() - t\n"
               "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "sys.stderr.write(f'{dt} {ru.ru_maxrss * 1024} {ru.ru_utime + ru.ru_stime}\\n')\n"
               "sys.stdout.buffer.write(p.stdout)\n"
               "sys.exit(p.returncode)\n")
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, cwd=root)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{p.stderr}")
    dt, rss, cpu = p.stderr.strip().splitlines()[-1].split()
    return float(dt), int(rss), float(cpu), p.stdout


INGEST = """
import sys, json
from pathlib import Path
from recpie_core.data.google_local import ingest_reviews
src, out = Path(sys.argv[1]), Path(sys.argv[2])
s = ingest_reviews([src], out / "raw_reviews.parquet", out / "rejected_reviews.parquet")
print(json.dumps({"lines_read": s.lines_read, "accepted": s.accepted, "rejected": s.rejected,
                  "duplicates": s.duplicates, "rejected_by_reason": s.rejected_by_reason}))
"""

# Polars alone, for scale: parse and write Parquet, no validation, no quarantine, no line
# numbers. It fails the whole read on one syntax error, so it only runs on the clean file.
SCAN_NDJSON = """
import sys, polars as pl
schema = {"user_id": pl.String, "name": pl.String, "time": pl.Int64, "rating": pl.Int64,
          "text": pl.String, "gmap_id": pl.String}
pl.scan_ndjson(sys.argv[1], schema=schema, ignore_errors=True).sink_parquet(sys.argv[2] + "/scan.parquet")
print(pl.scan_parquet(sys.argv[2] + "/scan.parquet").select(pl.len()).collect().item())
"""


def cached_input(folder: Path, lines: int, bad_rate: float, raw_utf8: bool = False) -> Path:
    name = f"review-{lines}{'' if bad_rate else '-clean'}{'-utf8' if raw_utf8 else ''}.json.gz"
    path = folder / name
    if not path.exists():
        print(f"generating {lines:,} lines into {path} (once) ...", flush=True)
        t = time.perf_counter()
        generate(path, lines, bad_rate=bad_rate, ensure_ascii=not raw_utf8)
        print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "recpie-bench",
                    help="where inputs are cached and outputs written (default /tmp/recpie-bench)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each contender; the fastest is kept")
    ap.add_argument("--no-clean", action="store_true",
                    help="skip the clean-file runs (the scan_ndjson comparison)")
    ap.add_argument("--raw-utf8", action="store_true",
                    help="inputs with raw UTF-8 text instead of \\u escapes (json.dumps(ensure_ascii=False))")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    inputs = {"dirty": cached_input(args.dir, args.lines, BAD_RATE, args.raw_utf8)}
    if not args.no_clean:
        inputs["clean"] = cached_input(args.dir, args.lines, 0.0, args.raw_utf8)

    rows, summary = [], None
    with tempfile.TemporaryDirectory(prefix="out-", dir=args.dir) as out:
        def best(label: str, cmd: list[str]) -> tuple[float, int, float, str]:
            runs = []
            for _ in range(args.repeat):
                runs.append(timed(cmd))
                for p in Path(out).iterdir():
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()  # tables are links
            return min(runs, key=lambda r: r[0])

        for kind, path in inputs.items():
            print(f"{kind} input: {path} ({path.stat().st_size / 1e6:.0f} MB gzipped); "
                  f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
            zcat = best("zcat", ["sh", "-c", 'zcat "$0" > /dev/null', str(path)])
            rows.append((f"zcat ({kind})", zcat, zcat[0]))
            ingest = best("ingest", [sys.executable, "-c", INGEST, str(path), out])
            rows.append((f"ingest_reviews ({kind})", ingest, zcat[0]))
            if kind == "dirty":
                summary = json.loads(ingest[3].strip().splitlines()[-1])
            else:
                rows.append(("scan_ndjson (clean)", best("scan", [sys.executable, "-c", SCAN_NDJSON, str(path), out]),
                             zcat[0]))

    print(f"\n{'contender':<26}{'seconds':>9}{'x zcat':>8}{'CPU s':>8}{'peak RSS':>11}")
    for name, (dt, rss, cpu, _), zcat_s in rows:
        print(f"{name:<26}{dt:>9.2f}{zcat_s / dt:>8.2f}{cpu:>8.2f}{rss / 2**20:>8.0f} MB")
    print(f"\ningest summary (dirty): {json.dumps(summary)}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
