"""Resumable uploads (tus 1.0) from gateways and browsers into ingest (R-6.2.1g/h, R-6.1.4)."""
