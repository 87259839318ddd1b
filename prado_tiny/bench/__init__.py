"""prado_tiny.bench."""
