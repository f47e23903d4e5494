"""The benchmarks' data: lines of 10 words, Zipf over a 10,000-word vocabulary, fixed seed."""
from __future__ import annotations

import itertools
import random

VOCABULARY = 10_000
WORDS_PER_LINE = 10
SEED = 20261125


def zipf_lines(count: int, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(VOCABULARY)]
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(VOCABULARY)))
    return [" ".join(rng.choices(words, cum_weights=cumulative, k=WORDS_PER_LINE))
            for _ in range(count)]


def line_chunks(count: int, chunk_lines: int, seed: int = SEED) -> list[bytes]:
    """``count`` lines as newline-terminated byte chunks of ``chunk_lines`` lines."""
    lines = zipf_lines(count, seed)
    return [("\n".join(lines[i:i + chunk_lines]) + "\n").encode()
            for i in range(0, count, chunk_lines)]
