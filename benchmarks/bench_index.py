"""FAISS indices against exact search: recall@10 and queries/s of `clip index build`'s kinds on one embeddings file.

Writes ROWS x DIM embeddings shaped like a model's as an embeddings file (a cluster per 200 rows, its members spread
along 16 directions shared by all clusters, about half as far apart within a cluster as between clusters, plus a
little noise), builds the index `--kind` picks (auto by default) with `clip_core.build_index`, then runs the same
queries (rows with a little noise added) through exact search (`clip search` without an index: every row, by
cosine) and through the index. Prints the build time, recall@10 against the exact top 10 and queries/s of each,
and the speed ratio.

    python benchmarks/bench_index.py [--rows 1000000] [--dim 512] [--queries 1000] [--kind auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clip_core.embedding.file import read_embeddings, write_embeddings
from clip_core.index import build_index, nearest


def clustered(rows: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Embeddings shaped like a model's, built in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, rows // 200), dim)).astype(np.float32)
    spread = (rng.standard_normal((16, dim)) / 6).astype(np.float32)
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        count = min(100_000, rows - start)
        block = centres[rng.integers(0, len(centres), count)]
        block += rng.standard_normal((count, 16)).astype(np.float32) @ spread
        block += 0.05 * rng.standard_normal((count, dim)).astype(np.float32)
        out[start : start + count] = block
    return torch.from_numpy(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--kind", default="auto")
    parser.add_argument("--memory-budget", dest="memory_budget", default="4GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "embeddings.npy"
        vectors = clustered(args.rows, args.dim)
        write_embeddings(path, vectors, [{"source": f"{row}.jpg"} for row in range(args.rows)], {})
        rng = np.random.default_rng(1)
        picked = vectors[torch.from_numpy(rng.choice(args.rows, args.queries, replace=False))]
        queries = picked + 0.05 * torch.from_numpy(rng.standard_normal(picked.shape).astype(np.float32))
        del vectors
        start = time.perf_counter()
        index = build_index(path, kind=args.kind, memory_budget=args.memory_budget, progress=False)
        built = time.perf_counter() - start
        embeddings = read_embeddings(path)
        start = time.perf_counter()
        exact = [hit for block in queries.split(100) for hit in nearest(embeddings, block, top_k=10)]
        exact_seconds = time.perf_counter() - start
        index.search(queries[:10], top_k=10)  # warm the memory-mapped rows and the index
        start = time.perf_counter()
        found = [hit for block in queries.split(100) for hit in index.search(block, top_k=10)]
        index_seconds = time.perf_counter() - start
    hits = sum(len({h.row for h in a} & {h.row for h in b}) for a, b in zip(found, exact, strict=True))
    recall = hits / sum(len(line) for line in exact)
    print(f"{args.rows:,} rows x {args.dim}, {args.queries:,} queries, {args.threads} threads")
    print(f"index: {index.kind} ({index.meta['factory']}, {index.params}), built in {built:.1f} s")
    print("| | queries/s | recall@10 | speed |")
    print("|---|---|---|---|")
    print(f"| exact search | {args.queries / exact_seconds:,.1f} | 1.000 | 1.0x |")
    print(
        f"| index ({index.kind}) | {args.queries / index_seconds:,.1f} | {recall:.3f} | "
        f"{exact_seconds / index_seconds:.1f}x |"
    )


if __name__ == "__main__":
    main()
