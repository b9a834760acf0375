"""Forms: allauth's login form under the field names our login page always used; member and role forms."""

from __future__ import annotations

from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import ResetPasswordForm as AllauthResetPasswordForm
from django import forms

from vetpacs.apps.accounts import workflow


class LoginForm(AllauthLoginForm):
    """allauth's form (username, e-mail or phone + password) posted as `username` and `password`,
    so /login/, its labels (#id_username) and every client that posts there keep working."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        login = self.fields["login"]
        login.label = "用户名 / 手机号 / 邮箱 Username, phone or e-mail"
        login.widget.attrs.update(
            {"placeholder": "用户名、手机号或邮箱", "autocomplete": "username", "autofocus": True}
        )
        self.fields["password"].label = "密码 Password"
        self.fields["password"].widget.attrs["placeholder"] = "密码 Password"

    def add_prefix(self, field_name: str) -> str:
        return "username" if field_name == "login" else super().add_prefix(field_name)


class MemberForm(forms.Form):
    username = forms.CharField(label="用户名 Username", max_length=150)
    email = forms.EmailField(label="邮箱 E-mail", required=False)
    phone = forms.CharField(label="手机号 Phone", max_length=32, required=False)
    role = forms.ChoiceField(label="角色 Role")
    password = forms.CharField(
        label="初始密码 Initial password",
        widget=forms.PasswordInput,
        required=False,
        help_text="留空则发送邀请链接。Leave empty to send an invitation link instead.",
    )

    def __init__(self, *args, roles: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles


class RoleForm(forms.Form):
    name = forms.CharField(label="角色名称 Role name", max_length=64)
    permissions = forms.MultipleChoiceField(
        label="权限 Permissions",
        widget=forms.CheckboxSelectMultiple,
        choices=[(p.code, f"{p.zh} {p.en}") for p in workflow.PERMISSIONS.values() if not p.platform_only],
    )


class AcceptInvitationForm(forms.Form):
    password1 = forms.CharField(label="设置密码 Password", widget=forms.PasswordInput)
    password2 = forms.CharField(label="再次输入 Password again", widget=forms.PasswordInput)

    def clean(self):  # noqa: ANN201 - Django's signature
        data = super().clean()
        if data.get("password1") != data.get("password2"):
            raise forms.ValidationError("两次输入的密码不一致。The two passwords differ.")
        return data


class ResetCodeRequestForm(forms.Form):
    phone = forms.CharField(
        label="手机号 Phone",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel", "autofocus": True}),
    )


class ResetWithCodeForm(forms.Form):
    code = forms.CharField(
        label="短信验证码 SMS code",
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )
    password1 = forms.CharField(label="新密码 New password", widget=forms.PasswordInput)
    password2 = forms.CharField(label="再次输入 New password again", widget=forms.PasswordInput)

    def clean(self):  # noqa: ANN201 - Django's signature
        data = super().clean()
        if data.get("password1") != data.get("password2"):
            raise forms.ValidationError("两次输入的密码不一致。The two passwords differ.")
        return data


class ResetPasswordForm(AllauthResetPasswordForm):
    """allauth's reset by e-mail, finding the account through the sealed address's blind index."""

    def clean_email(self) -> str:
        from allauth.account import app_settings
        from allauth.account.adapter import get_adapter

        from vetpacs.apps.accounts import services

        email = get_adapter().clean_email(self.cleaned_data["email"].lower())
        user = services.user_by_email(email, active_only=True)
        self.users = [user] if user is not None else []
        if not self.users and not app_settings.PREVENT_ENUMERATION:
            raise get_adapter().validation_error("unknown_email")
        return self.cleaned_data["email"]
