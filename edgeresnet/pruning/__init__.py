"""Structured pruning of ResNets, in layers (the prune stage, stages/prune.py, sequences them):

- structure.py: which channels exist and which residual additions tie together (spaces, segments)
- graph.py: how structure.py finds them: the rules applied to the model's torch.fx graph
- importance.py: a score per channel (L1, L2, BN scale, first-order Taylor) and per block
- select.py: how many channels each segment keeps, rounded for int8 kernels, and which
- search.py: the ratio that meets a MACs or latency target
- surgery.py: the smaller dense copy, and the identity that replaces a removed block
- sensitivity.py: top-1 against pruning ratio, one layer at a time
"""
