"""Plots: BABILong tables and heatmaps, training curves, memory heatmaps."""
