"""Frame interpolation.

- sketch_inbetween: exact in-betweens for animated sketches, in control-point space (linear, Catmull-Rom,
  natural / periodic cubic spline).
"""
