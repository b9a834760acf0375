"""Accounts: roles and permissions, login, MFA, password policy, lockout.

R-7.3.2.1a-e, R-7.3.2.2a, R-6.2.6.3, R-7.3.4.2.
"""
