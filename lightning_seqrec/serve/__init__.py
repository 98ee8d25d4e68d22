"""The recommendation service (`seqrec serve`, the `[serve]` extra): FastAPI routes over a loaded model, a FAISS index
and a bounded, persistable user-state store. See README "Serving and export"."""

from __future__ import annotations

from pathlib import Path

from lightning_seqrec import hub
from lightning_seqrec.finetune import load_source


def load_model(spec: str):
    """The module named by `spec` (a zoo name, `local-dir:`, `hf-hub:`, a Hub folder or a `.ckpt`, through the
    library's loaders only) and the test metrics its model card records ({} for a `.ckpt`)."""
    from lightning_seqrec.zoo import card_metrics

    module = load_source(spec)
    if str(spec).endswith(".ckpt"):
        return module, {}
    folder = Path(spec) if Path(spec).is_dir() else hub.resolve(spec)
    return module, card_metrics(folder)
