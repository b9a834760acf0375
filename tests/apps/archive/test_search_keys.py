"""Animal-name search keys: pinyin and initials of Chinese names, letters of Latin ones (R-6.2.4d)."""

from __future__ import annotations

import pytest

from tests.builders.dicom import image
from vetpacs.apps.archive.models import Patient
from vetpacs.apps.archive.search_keys import animal_name_key, normalise_query


def test_chinese_name_gets_full_pinyin_and_initials():
    assert animal_name_key("旺财") == "wangcai|wc"


def test_mixed_name_keeps_latin_letters_in_order():
    assert animal_name_key("Lucky 豆豆") == "luckydoudou|ldd"


def test_empty_name_has_no_key():
    assert animal_name_key("  ") == ""


def test_query_is_reduced_to_the_keys_alphabet():
    assert normalise_query(" Wang-Cai ") == "wangcai"


@pytest.mark.requirement("R-6.2.4d")
def test_ingest_stores_the_key_and_a_renamed_animal_gets_a_new_one(ingest, clinic):
    ingest(image(animal="旺财", patient_id="P-1"))
    assert Patient.objects.get(patient_id="P-1").animal_name_key == "wangcai|wc"
    ingest(image(animal="豆豆", patient_id="P-1"))
    assert Patient.objects.get(patient_id="P-1").animal_name_key == "doudou|dd"
