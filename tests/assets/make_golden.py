"""Regenerate the golden Hub folder `golden-sasrec/` and its `expected_scores.json` (run from the repo root).

Run it only when a change to the architecture or scoring is intended, and commit the outputs with that change:
`python tests/assets/make_golden.py`. Weights are drawn at a large scale so every parameter moves the scores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from lightning_seqrec import ItemVocab, SASRec
from lightning_seqrec.hub import save_pretrained

FOLDER = Path(__file__).resolve().parent / "golden-sasrec"
HISTORIES = [["i3"], ["i1", "i2", "i3", "i4", "i5", "i6", "i7"], ["i20", "i7", "i13"]]


def golden_module() -> SASRec:
    """20 items, 8 dims, 1 block, no dropout; every weight drawn from N(0, 0.5^2) with a fixed seed."""
    module = SASRec(20, embedding_dim=8, max_len=5, num_blocks=1, num_heads=2, ffn_dim=16, dropout=0.0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(0.5 * torch.randn(param.shape, generator=generator))
        module.item_embedding.weight[0].zero_()
    module.vocab = ItemVocab([f"i{n}" for n in range(1, 21)])
    module.item_titles = {"i1": "First item", "i7": "Seventh item"}
    return module.eval()


def main() -> None:
    module = golden_module()
    shutil.rmtree(FOLDER, ignore_errors=True)
    save_pretrained(module, FOLDER, dataset={"name": "synthetic", "split": "none (golden test asset)"})
    scores = module.score_histories(HISTORIES, exclude_seen=False)[:, 1:]  # column 0 (padding) is -inf
    expected = {"histories": HISTORIES, "scores": [[round(s, 7) for s in row] for row in scores.tolist()]}
    (FOLDER / "expected_scores.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
