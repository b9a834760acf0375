"""One test suite run against every blob store backend."""
