"""backprop-lab: reproducible backpropagation experiments on numpy networks."""

__version__ = "0.1.0"
