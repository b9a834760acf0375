"""Real-name verification and electronic signatures with evidence kept (存证) (R-6.2.7a)."""
