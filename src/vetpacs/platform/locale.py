"""The language Django's own texts speak (allauth's messages, form errors): the one the pages' labels do.

Chinese unless the user chose English with the header's switch (the language cookie, as
`vetpacs.web.labels.ui_language` reads it). The browser's Accept-Language is not consulted: a clinic's
computer set up in English would otherwise get English messages inside Chinese pages.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class ChosenLanguageMiddleware(LocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        language = settings.LANGUAGE_CODE
        if chosen:
            try:
                language = translation.get_supported_language_variant(chosen)
            except LookupError:
                pass  # a cookie naming a language the platform does not speak: the default
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
