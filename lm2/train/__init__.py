"""Training: pretraining and BABILong fine-tuning, checkpoints, distributed."""
