"""Tests for prado_tiny.layers.piece_embedding: a token is the sum of its pieces, padding adds nothing."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.piece_embedding import PieceEmbedding


def test_sum_of_pieces_and_padding():
    emb = PieceEmbedding(6, 3)
    ids = tf.constant([[[2, 3, 0], [5, 0, 0], [0, 0, 0]]])
    out = emb(ids).numpy()
    table = emb.embeddings.numpy()
    np.testing.assert_allclose(out[0, 0], table[2] + table[3], rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], table[5], rtol=1e-6)
    assert np.all(out[0, 2] == 0)  # a padded token is zero, whatever row 0 holds
    emb.embeddings.assign(np.ones((6, 3), np.float32) * 7)
    assert np.all(emb(ids).numpy()[0, 2] == 0)


def test_gradient_reaches_only_used_rows():
    emb = PieceEmbedding(6, 3)
    ids = tf.constant([[[2, 3], [1, 0]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(emb(ids))
    g = tf.convert_to_tensor(tape.gradient(loss, emb.embeddings)).numpy()
    assert np.all(g[[1, 2, 3]] != 0) and np.all(g[[0, 4, 5]] == 0)


def test_validation_and_config():
    with pytest.raises(ValueError):
        PieceEmbedding(1, 3)
    emb = PieceEmbedding(9, 4, name="e")
    clone = PieceEmbedding.from_config(emb.get_config())
    assert clone.get_config() == emb.get_config()
    assert keras.utils.get_registered_object("prado_tiny>PieceEmbedding") is PieceEmbedding
