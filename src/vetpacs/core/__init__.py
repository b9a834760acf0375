"""Kernel: the error catalogue, clock and identifiers. No I/O, no Django."""
