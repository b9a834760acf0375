"""The one catalogue of error codes: message, HTTP status and DIMSE status for each (Orthanc's model).

Each edge translates a VetpacsError once: the JSON API to RFC 9457 problem+json, DICOMweb to a
PS3.18 status and FailureReason, the gateway's SCP to a DIMSE status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DimseStatus(enum.IntEnum):
    """DIMSE status values used across the platform (PS3.4 Annex B, PS3.7 Annex C)."""

    SUCCESS = 0x0000
    # PS3.4 B.2.3: "Refused: Out of Resources"
    OUT_OF_RESOURCES = 0xA700
    # PS3.4 B.2.3: "Error: Data Set does not match SOP Class"
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    # PS3.4 B.2.3: "Error: Cannot understand"
    CANNOT_UNDERSTAND = 0xC000
    # PS3.7 C.5: "Duplicate SOP Instance" (also PS3.18 FailureReason 0x0111)
    DUPLICATE_SOP_INSTANCE = 0x0111
    # PS3.7 C.5: "No such SOP Class" / "SOP Class not supported"
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    # PS3.7 C.4: "Processing failure"
    PROCESSING_FAILURE = 0x0110
    # PS3.18 10.5.3: "Referenced SOP Instance UID does not match the study in the request"
    STUDY_UID_MISMATCH = 0xA770  # vendor range; see ErrorCode.STUDY_UID_MISMATCH


@dataclass(frozen=True)
class ErrorCode:
    code: str
    http_status: int
    message: str
    dimse_status: DimseStatus | None = None


class Errors:
    """Every error the platform can answer with. Messages are English; the UI translates by code."""

    # Bad DICOM input (ingest)
    NOT_DICOM = ErrorCode(
        "not_dicom", 400, "The file is not a DICOM Part 10 file", DimseStatus.CANNOT_UNDERSTAND
    )
    MISSING_ATTRIBUTE = ErrorCode(
        "missing_attribute", 400, "A required attribute is missing", DimseStatus.CANNOT_UNDERSTAND
    )
    INVALID_UID = ErrorCode("invalid_uid", 400, "A UID is not well-formed", DimseStatus.CANNOT_UNDERSTAND)
    UNKNOWN_SOP_CLASS = ErrorCode(
        "unknown_sop_class",
        400,
        "The SOP Class is not a known storage class",
        DimseStatus.SOP_CLASS_NOT_SUPPORTED,
    )
    INCONSISTENT_PIXEL_DATA = ErrorCode(
        "inconsistent_pixel_data",
        400,
        "The pixel data does not match the image attributes",
        DimseStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
    )
    DUPLICATE_INSTANCE = ErrorCode(
        "duplicate_instance",
        409,
        "An instance with this SOP Instance UID is already stored with different content",
        DimseStatus.DUPLICATE_SOP_INSTANCE,
    )
    STUDY_UID_MISMATCH = ErrorCode(
        "study_uid_mismatch",
        409,
        "The instance's Study Instance UID does not match the study in the request",
        DimseStatus.STUDY_UID_MISMATCH,
    )
    UID_IN_OTHER_ORGANISATION = ErrorCode(
        "uid_in_other_organisation",
        409,
        "This UID already belongs to data of another organisation",
        DimseStatus.DUPLICATE_SOP_INSTANCE,
    )
    CHECKSUM_MISMATCH = ErrorCode(
        "checksum_mismatch",
        460,
        "The received bytes do not match the declared SHA-256",
        DimseStatus.PROCESSING_FAILURE,
    )
    STORAGE_FAILED = ErrorCode(
        "storage_failed", 503, "The archive could not store the data", DimseStatus.OUT_OF_RESOURCES
    )
    # Requests
    BAD_REQUEST = ErrorCode("bad_request", 400, "The request is malformed")
    UNSUPPORTED_MEDIA_TYPE = ErrorCode(
        "unsupported_media_type", 415, "The request body's media type is not supported"
    )
    NOT_ACCEPTABLE = ErrorCode(
        "not_acceptable", 406, "None of the accepted media types or transfer syntaxes can be served"
    )
    LOSSY_REFUSED = ErrorCode(
        "lossy_refused",
        406,
        "Lossy transcoding is refused: images from DICOM devices are never served lossy (R-7.5c)",
    )
    PAYLOAD_TOO_LARGE = ErrorCode("payload_too_large", 413, "The upload is larger than allowed")
    NOT_FOUND = ErrorCode("not_found", 404, "Not found")
    UNAUTHENTICATED = ErrorCode("unauthenticated", 401, "Authentication is required")
    FORBIDDEN = ErrorCode("forbidden", 403, "You may not do this")
    INVALID_TOKEN = ErrorCode("invalid_token", 401, "The token is invalid, expired or revoked")
    BLOB_MISSING = ErrorCode("blob_missing", 500, "A stored object is missing from every replica")
    BLOB_CORRUPT = ErrorCode("blob_corrupt", 500, "A stored object failed its SHA-256 check")
    # Resumable uploads (tus 1.0)
    # "Tus-Resumable": a version the server does not speak answers 412 with Tus-Version.
    TUS_VERSION_UNSUPPORTED = ErrorCode(
        "tus_version_unsupported", 412, "The requested tus protocol version is not supported"
    )
    # PATCH: "If the offsets do not match, the Server MUST respond with the 409 Conflict status".
    OFFSET_MISMATCH = ErrorCode("offset_mismatch", 409, "Upload-Offset does not match the upload's offset")
    # A lock per upload, as tus recommends; a second writer is told to come back (as tusd does).
    UPLOAD_LOCKED = ErrorCode("upload_locked", 423, "Another request is writing this upload; retry shortly")
    METHOD_NOT_ALLOWED = ErrorCode("method_not_allowed", 405, "The method is not allowed on this URL")
    CODEC_UNAVAILABLE = ErrorCode(
        "codec_unavailable", 501, "The codec for this transfer syntax is not available"
    )
    # The clinic gateway (docs/gateway.md)
    ENCRYPTED_ATTRIBUTES_UNREADABLE = ErrorCode(
        "encrypted_attributes_unreadable",
        400,
        "The Encrypted Attributes Sequence cannot be opened with this platform's key",
        DimseStatus.CANNOT_UNDERSTAND,
    )
    GATEWAY_DISK_FULL = ErrorCode(
        "gateway_disk_full",
        507,
        "The gateway's spool has too little free space to accept the instance",
        DimseStatus.OUT_OF_RESOURCES,
    )
    CALLING_AE_NOT_ALLOWED = ErrorCode(
        "calling_ae_not_allowed", 403, "The calling AE title is not on the gateway's allow-list"
    )
    # Gateways as devices on the platform (apps/devices)
    ENROLMENT_CODE_INVALID = ErrorCode(
        "enrolment_code_invalid", 403, "The enrolment code is unknown, used or expired"
    )
    GATEWAY_NAME_TAKEN = ErrorCode("gateway_name_taken", 409, "The organisation has a gateway of this name")
    GATEWAY_REVOKED = ErrorCode("gateway_revoked", 409, "The gateway is revoked or not enrolled")
    DEVICE_RATE_LIMITED = ErrorCode(
        "device_rate_limited", 429, "The gateway sends more requests than its service level allows; wait"
    )
    # Signed requests with application keys (R-7.3.4.3a/c; docs/api-signing.md)
    INVALID_APP_KEY = ErrorCode("invalid_app_key", 401, "The application key is unknown or revoked")
    SIGNATURE_INVALID = ErrorCode(
        "signature_invalid", 401, "The request signature does not match the request and the key's secret"
    )
    SIGNATURE_EXPIRED = ErrorCode(
        "signature_expired", 401, "The signed request's timestamp is more than 5 minutes from the server's"
    )
    NONCE_REUSED = ErrorCode("nonce_reused", 401, "The signed request's nonce has been used before")
    APP_KEY_SCOPE = ErrorCode("app_key_scope", 403, "The application key is not permitted to do this")
    # SMS codes (R-6.2.7d)
    SMS_RATE_LIMITED = ErrorCode("sms_rate_limited", 429, "Too many SMS codes requested; wait and retry")
    SMS_CODE_INVALID = ErrorCode("sms_code_invalid", 400, "The SMS code is wrong, used or expired")
    SMS_SEND_FAILED = ErrorCode("sms_send_failed", 502, "The SMS provider did not accept the message")
    # Real-name verification and electronic signatures (R-6.2.7a)
    ID_NUMBER_INVALID = ErrorCode(
        "id_number_invalid", 400, "The resident ID number is not valid (GB 11643 format or check digit)"
    )
    REAL_NAME_REJECTED = ErrorCode("real_name_rejected", 422, "The name and ID number were not verified")
    REAL_NAME_REQUIRED = ErrorCode(
        "real_name_required", 409, "The user has no verified real name and signing key"
    )
    REAL_NAME_UNAVAILABLE = ErrorCode(
        "real_name_unavailable", 503, "The real-name verification service gave no answer; try again later"
    )


class VetpacsError(Exception):
    """An error from the catalogue, with a detail naming what exactly was wrong."""

    def __init__(self, error: ErrorCode, detail: str | None = None) -> None:
        self.error = error
        self.detail = detail or error.message
        super().__init__(f"{error.code}: {self.detail}")

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def http_status(self) -> int:
        return self.error.http_status

    @property
    def dimse_status(self) -> DimseStatus:
        return self.error.dimse_status or DimseStatus.PROCESSING_FAILURE
