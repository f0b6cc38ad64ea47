"""The engine: the Tensor, its primitives and shape rules (chapter 02) and autograd (chapter 09)."""
