"""DICOMweb (PS3.18) at /dicomweb: one module per transaction family, routes in urls.py."""
