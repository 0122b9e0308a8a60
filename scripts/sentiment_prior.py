"""Rebuilds streams/models/data/sentiment_prior.npz, the sentiment model's warm start.

    .venv/bin/python scripts/sentiment_prior.py [--sdist vaderSentiment-3.3.2.tar.gz]

Source: VADER's own human-rated corpus (C.J. Hutto and E. Gilbert, "VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM 2014), the four
``*_GroundTruth.txt`` files of ``additional_resources/hutto_ICWSM_2014.tar.gz`` inside the
vaderSentiment 3.3.2 source package on PyPI (MIT licence, Copyright (c) 2016 C.J. Hutto): 4,200
tweets, 10,605 movie-review, 3,708 product-review and 5,190 news-editorial snippets, each with
the mean of 20 raters' scores from -4 to 4.  Without ``--sdist`` the package is fetched with
``pip download --no-binary :all:`` (PyPI only).  Nothing from TweetEval is used.

A mean <= -1 is negative, >= 1 positive, anything else neutral (the thresholds and the corpora
were chosen on the tune part of bench.quality only).  Each text is normalised and tokenised as
the model does (``normalise``, ``tokens``), every distinct token counted once per text under its
class.  Written: ``hashes`` (crc32 of each token, uint32; the model takes them modulo its
n_features), ``counts`` (uint32, one row per hash, CLASSES order) and ``totals`` (the tokens
counted per class), compressed.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.models.sentiment import CLASSES, PRIOR_FILE, normalise, token_hash, tokens  # noqa: E402

VERSION = "3.3.2"
CORPORA = ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets")
NEGATIVE, POSITIVE = -1.0, 1.0  # mean rating at or below / at or above


def fetch(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--quiet", f"vaderSentiment=={VERSION}", "-d", str(folder)], check=True)
    return folder / f"vaderSentiment-{VERSION}.tar.gz"


def ground_truth(sdist: Path) -> list[tuple[float, str]]:
    """(mean rating, text) of every snippet of the four corpora."""
    with tarfile.open(sdist) as outer:
        member = outer.extractfile(f"vaderSentiment-{VERSION}/additional_resources/"
                                   "hutto_ICWSM_2014.tar.gz")
        assert member is not None
        inner_bytes = member.read()
    rated = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for name in CORPORA:
            f = inner.extractfile(f"hutto_ICWSM_2014/{name}_GroundTruth.txt")
            assert f is not None
            for line in f.read().decode("utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) >= 3:
                    rated.append((float(parts[1]), "\t".join(parts[2:])))
    return rated


def build(rated: list[tuple[float, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts: dict[int, list[int]] = {}
    totals = [0] * len(CLASSES)
    for rating, text in rated:
        k = 0 if rating <= NEGATIVE else 2 if rating >= POSITIVE else 1
        hashes = set(map(token_hash, tokens(normalise(text))))
        for h in hashes:
            counts.setdefault(h, [0] * len(CLASSES))[k] += 1
        totals[k] += len(hashes)
    order = sorted(counts)
    return (np.array(order, dtype=np.uint32), np.array([counts[h] for h in order], dtype=np.uint32),
            np.array(totals, dtype=np.uint32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", type=Path, help=f"vaderSentiment-{VERSION}.tar.gz, already "
                        "downloaded")
    parser.add_argument("--out", type=Path, default=ROOT / "streams/models/data" / PRIOR_FILE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rated = ground_truth(args.sdist or fetch(Path(tmp)))
    hashes, counts, totals = build(rated)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("wb") as f:  # a file object: savez_compressed adds no ".npz" to it
        np.savez_compressed(f, hashes=hashes, counts=counts, totals=totals)
    print(f"{args.out}: {len(rated)} rated texts, {len(hashes)} distinct tokens, per class "
          f"{dict(zip(CLASSES, (counts > 0).sum(axis=0).tolist(), strict=True))} tokens, totals "
          f"{totals.tolist()}, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
