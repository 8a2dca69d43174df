"""fer-edge: real-time facial emotion recognition daemon for the Raspberry Pi (no TensorFlow)."""

__version__ = "0.1.0"
