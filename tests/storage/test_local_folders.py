"""The local store remembers the folders it made, and makes one again if it was removed meanwhile."""

from __future__ import annotations

import io
import shutil

from vetpacs.storage.base import new_blob_key
from vetpacs.storage.local import LocalBlobStore


def test_a_blob_folder_removed_behind_the_store_is_made_again(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    key = new_blob_key()
    store.put(key, io.BytesIO(b"first"))
    folder = (tmp_path / "blobs" / key).parent
    shutil.rmtree(folder)  # an operator cleaning up, say

    again = key[:6] + "0" * 32  # the same folder, a new name
    info = store.put(again, io.BytesIO(b"second"))
    assert info.size == 6
    with store.open(again) as f:
        assert f.read() == b"second"
