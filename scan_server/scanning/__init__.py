"""The scanning core, below the policy, the rollout, training, evaluation and the service:
what a strategy sees (``state``), the baseline scans (``baselines``), the recording played as a
microscope (``virtual_microscope``). Nothing here imports the layers above."""
