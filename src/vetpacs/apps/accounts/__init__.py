"""Accounts: password policy and (to come) login, MFA, lockout (R-7.3.2.1d, R-6.2.6.3)."""
