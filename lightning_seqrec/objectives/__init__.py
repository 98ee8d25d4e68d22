"""Loss objects mixed into any backbone's module with a weight: `L = sum_i weight_i * L_i`; each sees the model
through a `ModelView` and draws its negatives / positives from `negatives.py` / `positives.py`."""

from lightning_seqrec.objectives.base import Objective
from lightning_seqrec.objectives.contrastive import (
    CL4SRec,
    InBatchInfoNCE,
    RelativeContrastive,
    SupervisedContrastive,
)
from lightning_seqrec.objectives.embedding_losses import (
    CosineEmbeddingLoss,
    EmbeddingCrossEntropy,
    WeightedCosineLoss,
)
from lightning_seqrec.objectives.next_item import BinaryCrossEntropy, FullCrossEntropy, GeneralisedBCE, SampledSoftmax
from lightning_seqrec.objectives.semantic_ce import SemanticSoftCE
from lightning_seqrec.objectives.view import ModelView

__all__ = ["BinaryCrossEntropy", "FullCrossEntropy", "GeneralisedBCE", "ModelView", "Objective", "SampledSoftmax"]
__all__ += ["CL4SRec", "InBatchInfoNCE", "RelativeContrastive", "SupervisedContrastive"]
__all__ += ["CosineEmbeddingLoss", "EmbeddingCrossEntropy", "WeightedCosineLoss"]
__all__ += ["SemanticSoftCE"]
