"""prado_tiny.export."""
