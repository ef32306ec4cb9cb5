"""Benchmarks (not tests): speed and memory measured as ratios against floors taken in the same run.

Usage: python -m hmkd.benchmarks.<name> --out results/   (names: distill_step, context_memory, distill_quality,
       data_pipeline, eval_throughput, step_formats; table prints them all; gpu sets up and runs the GPU figures)
       make bench | make bench-gpu
"""
