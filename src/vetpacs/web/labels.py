"""The words of the pages in Chinese (first) and English, and which of the two a request reads."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

CHINESE, ENGLISH = "zh-hans", "en"

# key: (Chinese, English). One word per thing (docs/glossary.md): patient is the animal, owner its owner.
_LABELS: dict[str, tuple[str, str]] = {
    "brand": ("vetpacs 兽医影像云平台", "vetpacs veterinary imaging"),
    "worklist": ("检查列表", "Worklist"),
    "dashboard": ("工作台", "Dashboard"),
    "members": ("成员与角色", "Members"),
    "gateways": ("网关", "Gateways"),
    "app_keys": ("应用密钥", "App keys"),
    "audit_log": ("审计日志", "Audit log"),
    "log_out": ("退出", "Log out"),
    "language": ("语言", "Language"),
    "exam_time": ("检查时间", "Exam time"),
    "animal_name": ("动物名", "Animal"),
    "patient_id": ("病历号", "Patient ID"),
    "species": ("物种", "Species"),
    "breed": ("品种", "Breed"),
    "sex": ("性别/绝育", "Sex/neutered"),
    "age": ("年龄", "Age"),
    "owner": ("主人", "Owner"),
    "owner_phone": ("主人电话", "Owner phone"),
    "modality": ("设备", "Modality"),
    "body_part": ("部位", "Body part"),
    "description": ("检查描述", "Description"),
    "images": ("图像数", "Images"),
    "clinic": ("医院", "Clinic"),
    "report_status": ("报告状态", "Report"),
    "accession": ("检查号", "Accession / exam ID"),
    "date_from": ("开始日期", "From"),
    "date_to": ("结束日期", "To"),
    "today": ("今天", "Today"),
    "days3": ("近3天", "3 days"),
    "days7": ("近7天", "7 days"),
    "all": ("全部", "All"),
    "search": ("查询", "Search"),
    "reset": ("重置", "Reset"),
    "open": ("打开", "Open"),
    "details": ("详情", "Details"),
    "light": ("手机看图", "Phone viewer"),
    "no_studies": ("没有符合条件的检查。", "No studies match."),
    "previous": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "total": ("共 {n} 项", "{n} studies"),
    "unreported": ("未报告", "Unreported"),
    "report_document": ("有PDF/SR报告文档", "PDF/SR report stored"),
    "report_filter_note": (
        "报告模块上线前，按检查中已存的 PDF 或 SR 报告文档区分",
        "Until the reports module exists: by a PDF or SR report document stored with the study",
    ),
    "male": ("公", "male"),
    "female": ("母", "female"),
    "neutered": ("已绝育", "neutered"),
    "intact": ("未绝育", "intact"),
    "years": ("{n}岁", "{n} y"),
    "months": ("{n}个月", "{n} mo"),
    "study": ("检查详情", "Study"),
    "animal_owner": ("动物与主人", "Animal and owner"),
    "birth_date": ("出生日期", "Birth date"),
    "microchip": ("芯片号", "Microchip"),
    "weight": ("体重", "Weight"),
    "series": ("序列", "Series"),
    "clinical_records": ("临床记录", "Clinical records"),
    "clinical_records_none": ("暂无临床记录（病历模块上线后显示）。", "No clinical records yet."),
    "priors": ("该动物的其他检查", "Other studies of this animal"),
    "later_study": ("较新", "later"),
    "priors_none": ("该动物没有其他检查。", "No other studies of this animal."),
    "report": ("报告", "Report"),
    "report_none": ("尚未报告（报告模块上线后在此书写）。", "Not reported yet."),
    "audit_trail": ("最近访问记录", "Latest views and downloads"),
    "audit_none": ("暂无记录。", "None yet."),
    "open_ohif": ("在阅片器中打开", "Open in viewer"),
    "compare": ("与此对比", "Compare"),
    "download_zip": ("下载原始 DICOM (ZIP)", "Download DICOM (ZIP)"),
    "download_jpeg": ("JPEG", "JPEG"),
    "download_png": ("PNG", "PNG"),
    "share": ("分享", "Share"),
    "share_soon": ("分享功能即将上线。", "Sharing is coming soon."),
    "when": ("时间", "When"),
    "who": ("用户", "Who"),
    "action": ("操作", "Action"),
    "study.viewed": ("查看", "viewed"),
    "study.downloaded": ("下载", "downloaded"),
    "instances_n": ("{n} 张", "{n} images"),
    "todays_exams": ("今日检查", "Today's exams"),
    "unreported_exams": ("未报告检查", "Unreported exams"),
    "my_drafts": ("我的草稿", "My drafts"),
    "gateways_offline": ("离线前置机", "Gateways offline"),
    "storage_use": ("存储用量", "Storage used"),
    "exams_per_day": ("近14天每日检查（按设备）", "Exams per day, last 14 days, by modality"),
    "invalid_filter": ("筛选条件有误", "Invalid filter"),
    "panel_reading": ("影像诊断", "Reading"),
    "panel_desk": ("检查与上传", "Exams and uploads"),
    "panel_admin": ("机构概况", "Organisation"),
    "panel_security": ("安全事件", "Security events"),
    "drafts_placeholder": ("报告模块上线后统计", "counted once reports exist"),
    "unreported_note": (
        "报告模块上线前，未存 PDF/SR 报告文档的检查计为未报告。",
        "Until reports exist, an exam without a stored PDF or SR report counts as unreported.",
    ),
    "latest_unreported": ("最新未报告检查", "Latest unreported exams"),
    "todays_workload": ("今日工作量（按小时、设备）", "Today's workload by hour and modality"),
    "todays_by_modality": ("今日检查（按设备）", "Today's exams by modality"),
    "upload_failures": ("上传失败（24小时）", "Upload failures (24 h)"),
    "last_seen": ("最后在线", "Last seen"),
    "never": ("从未", "never"),
    "storage_by_clinic": ("存储用量（按医院、设备）", "Storage by clinic and modality"),
    "users": ("用户", "Users"),
    "users_by_clinic": ("各机构用户数", "Users per organisation"),
    "failed_logins": ("登录失败（24小时）", "Failed logins (24 h)"),
    "accounts_locked": ("账号锁定（7天）", "Accounts locked (7 days)"),
    "recent_security": ("最近安全事件", "Recent security events"),
    "open_audit_log": ("查看审计日志", "Open the audit log"),
    "reason": ("原因", "Reason"),
    "file": ("文件", "File"),
    "result": ("结果", "Result"),
    "target": ("对象", "Target"),
    "none_now": ("无", "None"),
    "no_exams_today": ("今日暂无检查", "No exams today"),
    "total_sum": ("合计", "Total"),
    "nothing_for_roles": ("您的角色在工作台没有可显示的内容。", "Nothing on the dashboard for your roles."),
}


def ui_language(request: HttpRequest) -> str:
    """Chinese unless the user chose English with the switch (the language cookie)."""
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    return ENGLISH if chosen.lower().startswith("en") else CHINESE


def labels(language: str) -> dict[str, str]:
    index = 1 if language == ENGLISH else 0
    return {key: pair[index] for key, pair in _LABELS.items()}


def both(key: str) -> str:
    """'检查列表 Worklist': for messages read before a language is known (errors, titles)."""
    zh, en = _LABELS[key]
    return f"{zh} {en}"
