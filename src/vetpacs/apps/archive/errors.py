"""Archive errors are catalogue errors (vetpacs.core.errors); re-exported for callers of this app."""

from vetpacs.core.errors import Errors, VetpacsError

__all__ = ["Errors", "VetpacsError"]
