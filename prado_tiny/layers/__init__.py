"""prado_tiny.layers."""
