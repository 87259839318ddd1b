"""prado_tiny.compress: offline compression baselines of an embedding table and the report that
sets them against task-aware compositional codes (`prado-compress`)."""
