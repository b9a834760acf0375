"""Single sign-on: OpenID Connect identity providers configured per organisation (R-8.2d)."""
