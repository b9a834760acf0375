"""SMS: login, phone-verification and password-reset codes sent through a provider (R-6.2.7d)."""
