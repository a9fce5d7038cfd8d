"""Monocular depth for video (the design card's depth-estimator stage; Make-Your-Video's structure guidance).

types           DepthVideo: relative inverse depth per frame, full precision, plus what made it
midas           MiDaS v3 DPT-Hybrid (dpt_hybrid-midas-501f0c75.pt, what Make-Your-Video uses) on transformers' DPT
depth_anything  Depth-Anything-V2 Small / Base / Large (original .pth and transformers folders) on transformers
checkpoint      safe reading of files and folders, detection from keys, clear errors naming folder and file
estimate        DepthEstimator: per-model preprocessing, chunked inference, resizing back to the frames' size
normalize       per-frame / whole-clip / temporally stable normalisation and the flicker measure
"""
