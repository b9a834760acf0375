"""Backend-specific tests of the blob stores: S3, replication, and `vetpacs verify` over replicas."""
