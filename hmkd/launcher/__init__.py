"""The cluster pipeline: specs in jobs/*.yaml, stages submitted with submitit to Slurm (or run locally)."""
