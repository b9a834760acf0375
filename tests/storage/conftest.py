"""Backend-specific storage tests share the contract suite's S3 server fixture."""

from tests.contract.backends import s3_endpoint

__all__ = ["s3_endpoint"]
