"""Frame interpolation in plain PyTorch.

- `rife`, `rife_checkpoint`, `frames`: RIFE IFNet 4.7-4.26 (raster frames): the network, safe checkpoint loading
  with version detection, and the streaming driver (multiplier / target fps / timesteps, scene cuts, loop closing).
- `sketch_inbetween`: exact in-betweens for animated sketches, in control-point space (linear, Catmull-Rom,
  natural / periodic cubic spline).
"""
