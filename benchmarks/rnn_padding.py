"""Forward + backward time of the recurrent backbones (GRU4Rec, LSTM) as shipped, which move each row's padding
behind its items and run the padded recurrence, against packing the real items (`pack_padded_sequence`), which
computes the same outputs: the reason the backbones do not pack.

    python benchmarks/rnn_padding.py [--batch-size 128] [--lengths 50 200] [--repeats 5]

Each length is timed with every row full (ML-1M windows at max_len 200 mostly are) and with row lengths drawn
uniformly from 1..length; the two paths' outputs are checked equal before timing.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import torch
from _common import write_json
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lightning_seqrec.backbones.gru4rec import GRU4RecBackbone, rotate_rows
from lightning_seqrec.backbones.lstm import LSTMBackbone


def packed_forward(backbone: GRU4RecBackbone, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The backbone's forward pass with the real items packed instead of padded (the comparison path)."""
    length, lengths = x.shape[1], mask.sum(1).clamp(min=1)
    pad = length - lengths
    first = backbone.input_drop(rotate_rows(x, pad))
    packed = pack_padded_sequence(first, lengths, batch_first=True, enforce_sorted=False)
    out, _ = pad_packed_sequence(backbone.gru(packed)[0], batch_first=True, total_length=length)
    return backbone.out(rotate_rows(out, -pad)) * mask[..., None]


def seconds(forward, x: torch.Tensor, mask: torch.Tensor, repeats: int) -> float:
    """Median wall time of forward + backward over `repeats` calls, after one warm-up call."""
    times = []
    for _ in range(repeats + 1):
        leaf = x.detach().requires_grad_()
        start = time.perf_counter()
        forward(leaf, mask).sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="rnn_padding", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    rows = []
    for name, cls in (("gru4rec", GRU4RecBackbone), ("lstm", LSTMBackbone)):
        torch.manual_seed(0)
        backbone = cls(embedding_dim=64, hidden_dim=128, dropout=0.0)
        for length in args.lengths:
            for rows_are in ("full", "uniform"):
                x = torch.randn(args.batch_size, length, 64)
                lengths = torch.full((args.batch_size,), length)
                if rows_are == "uniform":
                    lengths = torch.randint(1, length + 1, (args.batch_size,))
                mask = torch.arange(length)[None, :] >= (length - lengths)[:, None]  # left padding
                x = x * mask[..., None]
                with torch.no_grad():
                    gap = (backbone(x, mask) - packed_forward(backbone, x, mask)).abs().max().item()
                assert gap < 1e-4, f"padded and packed outputs differ by {gap}"
                padded = seconds(backbone, x, mask, args.repeats)
                packed = seconds(functools.partial(packed_forward, backbone), x, mask, args.repeats)
                row = {"backbone": name, "length": length, "rows": rows_are, "padded_s": round(padded, 4)}
                row |= {"packed_s": round(packed, 4), "speedup": round(packed / padded, 1), "max_abs_gap": gap}
                rows.append(row)
                print(
                    f"{name:<8} length {length:>4} ({rows_are:<7} rows): padded {padded:.3f} s, "
                    f"packed {packed:.3f} s ({packed / padded:.1f}x), outputs within {gap:.1e}"
                )
    path = write_json(args.output, {"command": " ".join(sys.argv), "args": vars(args), "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
