"""Organisations (clinic, chain, imaging centre), memberships and API tokens (R-6.2.7b, R-6.2.9)."""
