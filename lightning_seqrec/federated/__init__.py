"""Federated cross-market training (FeCoSR) on Flower: one client per market, only the sequence encoder and the
embeddings of items shared across markets travel. Needs the `[federated]` extra (`flwr[simulation]`).

Above `run.py`: it may import run / modules / objectives / data; nothing below imports it.
"""
