"""The Hydra config tree shipped with the package (`pkg://lightning_seqrec.configs`)."""
