"""Training and evaluation engine: loops, metrics, distributed helpers."""
