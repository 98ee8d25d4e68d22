"""Explanation quality of the dual-branch weighting against a fixed 50/50 mix and each branch alone.

For each dataset: train a small SASRec (full CE, fixed epochs), fit the explainer's gate on training sequences,
explain the top-k of sampled users (their history without the test item, seen items masked) and measure attribute
precision, faithfulness and personalisation (definitions in the README, code in `lightning_seqrec.explain`).

    nice -n 10 python benchmarks/explanations.py --datasets ml-latest-small beauty
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from _common import REPO, RESULTS, use_shared_data, write_json

from lightning_seqrec import SASRec
from lightning_seqrec.data import AmazonBeauty, MovieLens100K, MovieLensLatestSmall
from lightning_seqrec.explain import Explainer, Explanation, attribute_precision, faithfulness, personalisation

DATA = {
    "ml-latest-small": lambda: MovieLensLatestSmall(max_len=50, user_core=5, item_core=5),
    "ml-100k": lambda: MovieLens100K(max_len=50),
    "beauty": lambda: AmazonBeauty(max_len=50),
}
VARIANTS = {"dual-branch (learned w_u)": "learned", "fixed 50/50": 0.5, "collaborative only": 1.0, "content only": 0.0}
BASE = "fixed 50/50"


def train_model(dm, name: str, epochs: int, seed: int):
    """A SASRec trained `epochs` epochs without validation, or its weights from an earlier run of this script
    (`outputs/explanations/`); its test metrics as a sanity check of the model."""
    import lightning as L

    L.seed_everything(seed, workers=True)
    model = SASRec(
        dm.num_items, embedding_dim=64, max_len=dm.max_len, num_blocks=2, num_heads=2, dropout=0.2, seed=seed
    )
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer = L.Trainer(max_epochs=epochs, limit_val_batches=0, **quiet)
    cached = REPO / "outputs" / "explanations" / f"{name}-e{epochs}-s{seed}.pt"
    cached_before = cached.is_file()
    if cached_before:
        model.load_state_dict(torch.load(cached, weights_only=True))
        model.attach_data(dm)
    else:
        trainer.fit(model, dm)
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cached)
    test = trainer.test(model, dm, verbose=False)[0]
    metrics = {k: round(float(v), 4) for k, v in test.items() if k.endswith("@10")}
    return model.eval(), {**metrics, "weights": str(cached.relative_to(REPO)), "loaded": cached_before}


def paired(this: dict, base: dict) -> dict:
    """Per-pair differences of the cited score drop and rank rise against another weighting, over the pairs both
    kept: mean, its standard error, and the share of pairs where this weighting's drop is larger / smaller."""
    a, b = this["per_pair"], base["per_pair"]
    common = sorted(set(a["index"]) & set(b["index"]))
    out = {"pairs": len(common)}
    for key in ("score_drop_cited", "rank_rise_cited"):
        x = dict(zip(a["index"], a[key], strict=True))
        y = dict(zip(b["index"], b[key], strict=True))
        diff = np.array([x[i] - y[i] for i in common])
        out[key] = {
            "mean_diff": float(diff.mean()),
            "se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "larger": float((diff > 0).mean()),
            "smaller": float((diff < 0).mean()),
        }
    return out


def own_attributes(explainer: Explainer, evidence, cite: int) -> list[Explanation]:
    """The naive content reason: the recommended item's own attributes, whether or not the history has them."""
    return [Explanation([], [], sorted(explainer.attributes[e.item])[:cite], [], 0.0) for e in evidence]


def measure(name: str, args) -> dict:
    dm = DATA[name]()
    dm.setup()
    start = time.perf_counter()
    epochs = args.epochs[name] if isinstance(args.epochs, dict) else args.epochs
    model, test = train_model(dm, name, epochs, args.seed)
    train_s = time.perf_counter() - start
    attributes = dm.item_attributes()
    explainer = Explainer(model, attributes, cite=args.cite, cite_attributes=args.cite)
    start = time.perf_counter()
    explainer.fit(dm, max_examples=args.fit_examples, seed=args.seed)
    fit_s = time.perf_counter() - start
    rng = np.random.default_rng(args.seed)
    users = rng.choice(dm.sequences.users, size=min(args.users, len(dm.sequences)), replace=False).tolist()
    raw = [dm.user_history(u)[:-1] for u in users]  # the test item is what the model predicts
    histories = [dm.vocab.encode(h) for h in raw]
    top = torch.topk(model.score_histories(raw), args.k, dim=1).indices.tolist()
    start = time.perf_counter()
    found = explainer.evidence(histories, top)
    evidence_s = time.perf_counter() - start
    evidence = [e for row in found for e in row]
    owners = [u for u, row in zip(users, found, strict=True) for _ in row]
    seen = [h for h, row in zip(histories, found, strict=True) for _ in row]
    learned = explainer.weights(evidence)
    rows = {}
    for label, weighting in VARIANTS.items():
        weights = learned if weighting == "learned" else np.full(len(evidence), float(weighting))
        explanations = explainer.compose(evidence, weights)
        rows[label] = {
            "mean_w": float(weights.mean()),
            "sd_w": float(weights.std()),
            "attribute": attribute_precision(explainer, evidence, explanations),
            "faithfulness": faithfulness(explainer, evidence, explanations, seen, draws=args.draws, seed=args.seed),
            "personalisation": personalisation(owners, evidence, explanations),
        }
    for label in VARIANTS:
        if label != BASE:
            rows[label]["vs_fixed_50_50"] = paired(rows[label]["faithfulness"], rows[BASE]["faithfulness"])
    for row in rows.values():
        row["faithfulness"].pop("per_pair", None)
    naive = own_attributes(explainer, evidence, args.cite)
    rows["baseline: the item's own attributes"] = {"attribute": attribute_precision(explainer, evidence, naive)}
    return {
        "items": dm.num_items,
        "users_explained": len(users),
        "pairs": len(evidence),
        "model_test": test,
        "epochs": epochs,
        "train_seconds": round(train_s, 1),
        "gate_fit_seconds": round(fit_s, 1),
        "evidence_seconds": round(evidence_s, 1),
        "gate_infonce_first_last": [round(explainer.losses[0], 4), round(explainer.losses[-1], 4)],
        "variants": rows,
    }


def print_table(name: str, result: dict) -> None:
    test = {k: v for k, v in result["model_test"].items() if k.startswith("test/")}
    print(f"\n{name}: {result['pairs']} (user, item) pairs, SASRec test {test}")
    print(f"  gate InfoNCE {result['gate_infonce_first_last'][0]} -> {result['gate_infonce_first_last'][1]}")
    head = f"  {'variant':<38}{'w_u':>12}{'attr prec':>10}{'drop cited':>11}{'drop rand':>10}"
    print(head + f"{'rank+ cited':>12}{'rank+ rand':>11}{'differ':>8}{'attr diff':>10}")
    for label, row in result["variants"].items():
        precision = row["attribute"]["precision"]
        line = f"  {label:<38}" + (f"{row['mean_w']:>6.3f}±{row['sd_w']:<5.3f}" if "mean_w" in row else " " * 12)
        line += f"{precision:>10.3f}" if precision is not None else f"{'-':>10}"
        if "faithfulness" in row:
            f, p = row["faithfulness"], row["personalisation"]
            line += f"{f['score_drop_cited']:>11.3f}{f['score_drop_random']:>10.3f}"
            line += f"{f['rank_rise_cited']:>12.1f}{f['rank_rise_random']:>11.1f}"
            line += f"{p['differ']:>8.3f}{p['attributes_differ']:>10.3f}"
        print(line)
    for label, row in result["variants"].items():
        if "vs_fixed_50_50" in row:
            d = row["vs_fixed_50_50"]
            s, r = d["score_drop_cited"], d["rank_rise_cited"]
            print(
                f"  {label} - fixed 50/50, paired over {d['pairs']} pairs: score drop {s['mean_diff']:+.4f} ± "
                f"{s['se']:.4f} (larger in {s['larger']:.0%}, smaller in {s['smaller']:.0%}), rank rise "
                f"{r['mean_diff']:+.1f} ± {r['se']:.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-latest-small", "beauty"], choices=sorted(DATA))
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: 15 MovieLens, 8 Beauty)")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--cite", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--fit-examples", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = {"ml-latest-small": 15, "ml-100k": 15, "beauty": 8}
    use_shared_data()
    path = RESULTS / "explanations.json"
    results = json.loads(path.read_text())["results"] if path.is_file() else {}
    for name in args.datasets:  # each dataset replaces its own entry, written as soon as it is measured
        results[name] = {"command": " ".join(["python", *sys.argv]), **measure(name, args)}
        print_table(name, results[name])
        write_json("explanations", {"results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
