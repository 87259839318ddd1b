"""prado-tiny: tiny embedding-free NLU models shipped as int8 TFLite flatbuffers."""
import os

# tfmot only accepts Keras 2 models, and tf.keras is Keras 3 unless this is set before the first
# `import tensorflow` (../shared/STACK.md). setdefault keeps a user's explicit choice visible.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter hides our own messages in the CLI tools.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
