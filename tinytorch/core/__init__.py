"""Core building blocks, each generated from one chapter."""
