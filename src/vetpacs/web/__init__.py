"""HTML pages: login, the studies page, the OHIF viewer mount (R-6.2.2c)."""
