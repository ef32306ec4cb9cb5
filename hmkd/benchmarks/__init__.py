"""Benchmarks (not tests): speed and memory measured as ratios against floors taken in the same run.

Usage: python -m hmkd.benchmarks [distill_step|context_memory|distill_quality ...] --out results/
"""
