"""Evaluation: BABILong, MMLU, perplexity."""
