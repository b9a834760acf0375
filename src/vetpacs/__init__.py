"""vetpacs: cloud imaging platform for veterinary clinics (T/CVMA 275-2025)."""

__version__ = "0.1.0"
