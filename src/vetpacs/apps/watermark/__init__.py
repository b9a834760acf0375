"""Watermarks on pictures leaving the platform: a visible tiled mark and a signed trace (R-7.3.4.3b)."""
