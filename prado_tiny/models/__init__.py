"""prado_tiny.models."""
