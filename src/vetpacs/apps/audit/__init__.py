"""The audit log: append-only, hash-chained record of every data operation (R-7.3.3c, R-7.3.2.2f)."""
