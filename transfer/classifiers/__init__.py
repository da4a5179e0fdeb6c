"""Heads fitted on feature arrays: arrays in, scores out; no files, no argparse.

``logreg``: the linear probe (the original's scikit-learn chain, and the same fits in torch);
``weighted_knn``: DINO's weighted kNN; ``protonet``: few-shot episodes scored by prototypes.
"""
