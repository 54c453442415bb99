"""Keras layers (tf_keras), one public layer per module."""
