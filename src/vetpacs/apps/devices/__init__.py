"""Clinic gateways as devices: enrolment, heartbeats, commands, HIS records (R-8.3a, R-6.1.2, R-6.2.3d)."""
