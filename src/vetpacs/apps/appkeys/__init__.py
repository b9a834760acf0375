"""Application keys and HMAC-signed API requests for third-party systems (R-7.3.4.3a/c, R-6.2.9)."""
