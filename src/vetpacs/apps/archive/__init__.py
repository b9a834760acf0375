"""The archive: animals, studies, series, instances, blobs; the ingest service (R-6.2.1a/g, R-7.5a/c)."""
