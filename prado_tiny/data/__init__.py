"""Dataset readers, the example type, parse utilities, label vocabularies and input pipelines."""
from prado_tiny.data.example import DataError, Example, ReadReport  # noqa: F401
