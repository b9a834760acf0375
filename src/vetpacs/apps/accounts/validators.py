"""Django password validators wrapping the pure rules in workflow.py (AUTH_PASSWORD_VALIDATORS)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from vetpacs.apps.accounts import workflow


class PolicyValidator:
    """R-7.3.2.1d: length, character classes, no account name, no consecutive digits."""

    def validate(self, password: str, user=None) -> None:  # noqa: ANN001 - Django's signature
        names = []
        if user is not None:
            names = [getattr(user, f, "") or "" for f in ("username", "email")]
            if not names[1] and getattr(user, "pk", None):
                from vetpacs.apps.accounts.services import email_of

                names[1] = email_of(user)  # a saved user's address is kept sealed (R-7.3.4.1c)
            names += [n.split("@")[0] for n in names if "@" in n]
        problems = workflow.password_problems(password, names)
        if problems:
            raise ValidationError([ValidationError(p.message(), code=p.code) for p in problems])

    def get_help_text(self) -> str:
        return (
            "至少 8 个字符，须含数字、大写字母、小写字母和特殊字符；不得包含账号名或连续数字。"
            " At least 8 characters with digits, upper- and lower-case letters and special characters;"
            " no part of the account name and no consecutive digits."
        )


class PasswordHistoryValidator:
    """R-7.3.2.1d: not the current password nor one of the previous ones; remembers each new one."""

    MESSAGE = workflow.Problem(
        "password_reused",
        "不能使用最近 5 次用过的密码。",
        "The password must differ from your last 5 passwords.",
    )

    def validate(self, password: str, user=None) -> None:  # noqa: ANN001 - Django's signature
        from vetpacs.apps.accounts.services import password_history_problem

        if password_history_problem(password, user):
            raise ValidationError(self.MESSAGE.message(), code=self.MESSAGE.code)

    def password_changed(self, password: str, user=None) -> None:  # noqa: ANN001
        from vetpacs.apps.accounts.services import remember_password

        if user is not None:
            remember_password(user)

    def get_help_text(self) -> str:
        return "不能与最近 5 次的密码相同。 Must differ from your last 5 passwords."
