"""Data sources: synthetic generators, readers for public datasets, candidate generators."""
