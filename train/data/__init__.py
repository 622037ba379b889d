"""Data sets: the `hwm-v1` format, the 1X world-model v2.0 readers, training windows."""
