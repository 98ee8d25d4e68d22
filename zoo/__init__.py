"""The zoo index and recipes, installed with the package as `lightning_seqrec.zoo_index` (data files only)."""
