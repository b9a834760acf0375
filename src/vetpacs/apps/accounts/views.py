"""Administrators' pages (Chinese first): members and their lifecycle, custom roles, the access
review (R-7.3.2.1e) and security events (R-7.3.2.2a); the invitation page for new members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from vetpacs.apps.accounts import services, workflow
from vetpacs.apps.accounts.adapter import client_ip
from vetpacs.apps.accounts.forms import (
    AcceptInvitationForm,
    MemberForm,
    ResetCodeRequestForm,
    ResetWithCodeForm,
    RoleForm,
)
from vetpacs.apps.accounts.models import Role
from vetpacs.apps.orgs.models import Membership, Organisation
from vetpacs.core.masking import mask_phone


def _org_query(org: Organisation) -> str:
    return f"?org={org.pk}"


def _member(org: Organisation, user_id: str | None):  # noqa: ANN202 - Django user
    """A member of this organisation, else 404 (another clinic's user does not exist here)."""
    if not user_id or not str(user_id).isdigit():
        raise Http404
    m = Membership.objects.filter(organisation=org, user_id=int(user_id)).select_related("user").first()
    if m is None:
        raise Http404
    return m.user


def _context(request: HttpRequest, perm: str, **extra) -> dict:
    return {
        "org": request.organisation,  # type: ignore[attr-defined]
        "orgs": services.organisations_with(request.user, perm),
        "may_manage": services.has_permission(request.user, "member.manage", request.organisation),  # type: ignore[attr-defined]
        "may_roles": services.has_permission(request.user, "role.manage", request.organisation),  # type: ignore[attr-defined]
        "may_security": services.has_permission(request.user, "security.manage", request.organisation),  # type: ignore[attr-defined]
        **extra,
    }


@require_http_methods(["GET", "POST"])
@services.require_permission("member.view")
def members(request: HttpRequest) -> HttpResponse:
    org: Organisation = request.organisation  # type: ignore[attr-defined]
    roles = services.role_choices(org)
    form = MemberForm(roles=roles)
    invite_link = ""
    if request.method == "POST":
        if not services.has_permission(request.user, "member.manage", org):
            raise Http404
        action = request.POST.get("action", "create")
        try:
            if action == "create":
                form = MemberForm(request.POST, roles=roles)
                if form.is_valid():
                    d = form.cleaned_data
                    if d["password"]:
                        services.create_account(
                            organisation=org,
                            username=d["username"],
                            password=d["password"],
                            role=d["role"],
                            email=d["email"],
                            phone=d["phone"],
                            by=request.user,
                            ip=client_ip(request),
                        )
                        messages.success(
                            request, f"已创建账号 {d['username']}，首次登录须修改密码。Account created."
                        )
                        return redirect(reverse("accounts_members") + _org_query(org))
                    _, raw = services.invite(
                        organisation=org,
                        username=d["username"],
                        role=d["role"],
                        email=d["email"],
                        phone=d["phone"],
                        by=request.user,
                    )
                    invite_link = request.build_absolute_uri(reverse("accounts_invitation", args=[raw]))
                    form = MemberForm(roles=roles)
            elif action == "mfa":
                services.set_organisation_mfa(
                    organisation=org, required=request.POST.get("required") == "1", by=request.user
                )
                return redirect(reverse("accounts_members") + _org_query(org))
            else:
                user = _member(org, request.POST.get("user"))
                if action == "delete":
                    services.delete_account(user=user, organisation=org, by=request.user)
                elif action == "modify":
                    services.modify_account(
                        user=user,
                        organisation=org,
                        by=request.user,
                        email=request.POST.get("email", services.email_of(user)),
                        phone=request.POST.get("phone"),
                    )
                else:
                    services.review_action(
                        user=user,
                        organisation=org,
                        action=action,
                        role=request.POST.get("role", ""),
                        by=request.user,
                    )
                return redirect(reverse("accounts_members") + _org_query(org))
        except services.AccountError as exc:
            form.add_error(None, f"{exc.zh} {exc.en}".strip())
    rows = services.access_review(org)
    return render(
        request,
        "accounts/members.html",
        _context(request, "member.view", rows=rows, form=form, roles=roles, invite_link=invite_link),
    )


@require_http_methods(["GET", "POST"])
@services.require_permission("role.manage")
def roles(request: HttpRequest) -> HttpResponse:
    org: Organisation = request.organisation  # type: ignore[attr-defined]
    form = RoleForm()
    if request.method == "POST":
        action = request.POST.get("action", "create")
        try:
            if action == "delete":
                role = Role.objects.filter(organisation=org, pk=request.POST.get("role") or 0).first()
                if role is None:
                    raise Http404
                services.delete_role(role=role, by=request.user)
                return redirect(reverse("accounts_roles") + _org_query(org))
            form = RoleForm(request.POST)
            if form.is_valid():
                services.create_role(
                    organisation=org,
                    name=form.cleaned_data["name"],
                    permissions=set(form.cleaned_data["permissions"]),
                    by=request.user,
                )
                return redirect(reverse("accounts_roles") + _org_query(org))
        except services.AccountError as exc:
            form.add_error(None, f"{exc.zh} {exc.en}")
    custom = Role.objects.filter(organisation=org).order_by("name")
    builtin = [(r, sorted(r.permissions)) for r in workflow.BUILTIN_ROLES.values()]
    return render(
        request,
        "accounts/roles.html",
        _context(
            request,
            "role.manage",
            form=form,
            custom=custom,
            builtin=builtin,
            catalogue=workflow.PERMISSIONS,
        ),
    )


@require_http_methods(["GET", "POST"])
@services.require_permission("member.view")
def review(request: HttpRequest) -> HttpResponse:
    """R-7.3.2.1e: roles and last login of every member; disable or re-role in one step."""
    org: Organisation = request.organisation  # type: ignore[attr-defined]
    error = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        needed = "role.manage" if action == "role" else "member.manage"
        if not services.has_permission(request.user, needed, org):
            raise Http404
        user = _member(org, request.POST.get("user"))
        try:
            services.review_action(
                user=user, organisation=org, action=action, role=request.POST.get("role", ""), by=request.user
            )
            return redirect(reverse("accounts_review") + _org_query(org))
        except services.AccountError as exc:
            error = f"{exc.zh} {exc.en}"
    rows = services.access_review(org)
    return render(
        request,
        "accounts/review.html",
        _context(
            request,
            "member.view",
            rows=rows,
            roles=services.role_choices(org),
            error=error,
            dormant_days=services._setting("VETPACS_DORMANT_AFTER_DAYS", 90),
            dormant_count=sum(r.dormant for r in rows),
        ),
    )


@require_http_methods(["GET", "POST"])
@services.require_permission("security.manage")
def security(request: HttpRequest) -> HttpResponse:
    """R-7.3.2.2a: locked accounts and blocked addresses, with unlock and lift."""
    org: Organisation = request.organisation  # type: ignore[attr-defined]
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "unlock":
            services.unlock_account(user=_member(org, request.POST.get("user")), by=request.user)
        elif action == "lift":
            visible = {e.ip for e in services.security_events(request.user) if e.ip}
            ip = request.POST.get("ip", "")
            if ip not in visible:
                raise Http404
            services.lift_ip_block(ip=ip, by=request.user)
        return redirect(reverse("accounts_security") + _org_query(org))
    events = services.security_events(request.user)
    user_ids = [int(e.subject.split(":", 1)[1]) for e in events if e.subject.startswith("user:")]
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    rows = []
    for e in events:
        user_id = int(e.subject.split(":", 1)[1]) if e.subject.startswith("user:") else None
        rows.append({"event": e, "user_id": user_id, "username": names.get(user_id, "")})
    return render(request, "accounts/security.html", _context(request, "security.manage", rows=rows))


@require_http_methods(["GET", "POST"])
def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.open_invitation(token)
    if invitation is None:
        return render(request, "accounts/invitation.html", {"invalid": True}, status=404)
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.accept_invitation(
                raw_token=token, password=form.cleaned_data["password1"], ip=client_ip(request)
            )
        except services.AccountError as exc:
            form.add_error(None, f"{exc.zh} {exc.en}".strip())
        else:
            messages.success(request, "账号已激活，请登录。Your account is active; please log in.")
            return redirect("login")
    return render(request, "accounts/invitation.html", {"invitation": invitation, "form": form})


RESET_PHONE = "vetpacs_reset_phone"
RESET_SENT = "验证码已发送（如该号码属于某个账号）。A code was sent, if the number belongs to an account."


@require_http_methods(["GET", "POST"])
def reset_password_sms(request: HttpRequest) -> HttpResponse:
    """Step 1 of a password reset by SMS code: the phone number (R-7.3.2.1d, R-6.2.7d)."""
    from vetpacs.core.errors import VetpacsError

    form = ResetCodeRequestForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        phone = form.cleaned_data["phone"].strip()
        try:
            services.request_password_reset_code(phone=phone, ip=client_ip(request))
        except VetpacsError as exc:
            form.add_error("phone", exc.detail)
            status = exc.http_status
        else:
            request.session[RESET_PHONE] = phone
            messages.info(request, RESET_SENT)
            return redirect("accounts_reset_password_sms_confirm")
    return render(request, "accounts/reset_sms.html", {"form": form, "step": "phone"}, status=status)


@require_http_methods(["GET", "POST"])
def reset_password_sms_confirm(request: HttpRequest) -> HttpResponse:
    """Step 2: the code and the new password (the policy and the history apply)."""
    phone = request.session.get(RESET_PHONE)
    if not phone:
        return redirect("accounts_reset_password_sms")
    form = ResetWithCodeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.reset_password_with_code(
                    phone=phone,
                    code=form.cleaned_data["code"],
                    new=form.cleaned_data["password1"],
                    ip=client_ip(request),
                )
            except services.AccountError as exc:
                form.add_error(None, f"{exc.zh} {exc.en}".strip())
            else:
                request.session.pop(RESET_PHONE, None)
                messages.success(
                    request, "密码已重置，请用新密码登录。Your password is reset; log in with it."
                )
                return redirect("login")
        status = 400
    context = {"form": form, "step": "code", "phone": mask_phone(phone)}
    return render(request, "accounts/reset_sms.html", context, status=status)
