"""DICOM foundations shared by the platform and the gateway: parse, validate, index, protect identity."""
