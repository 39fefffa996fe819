"""Structured pruning of ResNets, in layers (the prune stage, stages/prune.py, sequences them):

- structure.py: which channels exist and which residual additions tie together (spaces, segments)
- graph.py: how structure.py finds them: the rules applied to the model's torch.fx graph
  - trace.py: the graph itself (torch.fx on meta tensors) and how to read a node
  - ops.py: which op takes which rule, by module class or function name
  - spaces.py: the rules' joined channels as named spaces and segments
  - removable.py: the residual blocks the graph proves an identity can replace
- importance.py: a score per channel (L1, L2, BN scale, first-order Taylor) and per block
- select.py: how many channels each segment keeps, rounded for int8 kernels, and which
- search.py: the ratio that meets a MACs or latency target
- surgery.py: the smaller dense copy, and the identity that replaces a removed block
- sensitivity.py: top-1 against pruning ratio, one layer at a time
- rebuild.py: a pruned architecture rebuilt from its saved channel plan
- groups.py: the residual streams as `inspect` shows them
"""
