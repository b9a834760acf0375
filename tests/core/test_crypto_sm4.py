"""SM4-GCM as the envelope algorithm: chosen by a setting, old AES seals still open, tampering refused."""

import pytest
from cryptography.exceptions import InvalidTag

from vetpacs.core import crypto


@pytest.fixture
def sm4():
    crypto.use_algorithm(crypto.SM4_GCM)
    yield
    crypto.use_algorithm(crypto.AES_256_GCM)


@pytest.mark.requirement("R-7.3.4.1c")
def test_sm4_gcm_seals_and_opens(sm4):
    key = crypto.new_data_key()
    sealed = crypto.seal(key, "张伟 13812345678".encode(), b"owner:1:name")
    assert sealed[:1] == b"\x02"
    assert crypto.open_sealed(key, sealed, b"owner:1:name").decode() == "张伟 13812345678"


def test_values_sealed_with_aes_still_open_after_switching_to_sm4():
    key = crypto.new_data_key()
    old = crypto.seal(key, b"before", b"a")
    crypto.use_algorithm(crypto.SM4_GCM)
    try:
        new = crypto.seal(key, b"after", b"a")
        assert crypto.open_sealed(key, old, b"a") == b"before"
        assert crypto.open_sealed(key, new, b"a") == b"after"
    finally:
        crypto.use_algorithm(crypto.AES_256_GCM)


@pytest.mark.parametrize("change", ["aad", "byte"])
def test_sm4_gcm_refuses_a_changed_value_or_context(sm4, change):
    key = crypto.new_data_key()
    sealed = bytearray(crypto.seal(key, b"secret", b"owner:1"))
    aad = b"owner:1"
    if change == "aad":
        aad = b"owner:2"
    else:
        sealed[-20] ^= 1
    with pytest.raises(InvalidTag):
        crypto.open_sealed(key, bytes(sealed), aad)


def test_an_unknown_algorithm_name_is_refused():
    with pytest.raises(ValueError, match="sm4-gcm"):
        crypto.use_algorithm("des")
