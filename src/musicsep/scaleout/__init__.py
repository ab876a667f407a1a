"""See docs/architecture.md for this layer's role."""
