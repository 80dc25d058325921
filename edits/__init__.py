"""Memorization pruning: K-FAC factor collection, the curvature-mass edit, checkpoints."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lethe-serve")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
