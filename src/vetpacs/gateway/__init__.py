"""The clinic gateway (前置机): receives, protects, compresses and uploads. Runs without Django."""
