"""hmkd: heterogeneous knowledge distillation for semantic segmentation.

Usage: ``hmkd --help`` (console script) or ``python -m hmkd``.
"""
__version__ = "0.1.0"
