"""The language Django's own texts speak (allauth's messages, form errors): the one the pages' labels do.

Chinese unless the user chose English with the header's switch: `vetpacs.web.labels.ui_language`
decides, for both. The browser's Accept-Language is not consulted: a clinic's computer set up in
English would otherwise get English messages inside Chinese pages.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

from vetpacs.web.labels import ui_language


class ChosenLanguageMiddleware(LocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        translation.activate(ui_language(request))  # a Django language code: "zh-hans" or "en"
        request.LANGUAGE_CODE = translation.get_language()
