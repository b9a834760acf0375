"""tus error codes the core catalogue does not hold (yet): same ErrorCode shape, same translation."""

from __future__ import annotations

from vetpacs.core.errors import ErrorCode

# tus 1.0 "Tus-Resumable": a version the server does not speak answers 412 with Tus-Version.
TUS_VERSION_UNSUPPORTED = ErrorCode(
    "tus_version_unsupported", 412, "The requested tus protocol version is not supported"
)
# tus 1.0 PATCH: "If the offsets do not match, the Server MUST respond with the 409 Conflict status".
OFFSET_MISMATCH = ErrorCode("offset_mismatch", 409, "Upload-Offset does not match the upload's offset")
# tus 1.0 recommends a lock per upload; a second writer is told to come back (as tusd does).
UPLOAD_LOCKED = ErrorCode("upload_locked", 423, "Another request is writing this upload; retry shortly")
METHOD_NOT_ALLOWED = ErrorCode("method_not_allowed", 405, "The method is not allowed on this URL")
