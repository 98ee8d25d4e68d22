"""Lightning callbacks shipped with lightning-seqrec, importable as `lightning_seqrec.callbacks`.

Callbacks are the extension surface: a user's own callback plugs in through `callbacks=` in the config
exactly like these.
"""

from lightning_seqrec.callbacks.diversity_metrics import DiversityMetrics
from lightning_seqrec.callbacks.freed_memory import ReturnFreedMemory
from lightning_seqrec.callbacks.training_curves import TrainingCurves
from lightning_seqrec.callbacks.wandb_tracking import WandbTracking
from lightning_seqrec.callbacks.zoo_publisher import ZooPublisher

from lightning_seqrec.objectives.mining import WeakPositiveMiner  # RCL's miner, which objective=rcl brings

__all__ = [
    "DiversityMetrics",
    "ReturnFreedMemory",
    "TrainingCurves",
    "WandbTracking",
    "WeakPositiveMiner",
    "ZooPublisher",
]
