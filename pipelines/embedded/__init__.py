"""Embedded text-to-video prior: a small model trained on procedurally generated sketch clips.

`data` makes the training data (moving line drawings with captions) and the motion measures
used to evaluate generated clips; it needs nothing but PyTorch and this pack's rasterizer.
"""
