"""The identity store: owners' personal data, encrypted per clinic, apart from images (R-7.3.4.5b/1c)."""
