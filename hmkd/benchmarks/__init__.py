"""Benchmarks (not tests): speed and memory measured as ratios against floors taken in the same run.

Usage: python -m hmkd.benchmarks.<name> --out results/   (names: distill_step, context_memory, distill_quality,
       data_pipeline, eval_throughput, step_formats; table prints them all; gpu runs the GPU figures inside the
       venv that tools/bench_gpu.py sets up)
       make bench | make bench-gpu
"""
