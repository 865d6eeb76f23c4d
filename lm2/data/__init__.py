"""Offline data: bAbI, BABILong, corpora, tokenizers, MMLU."""
