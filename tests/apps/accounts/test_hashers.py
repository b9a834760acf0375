"""argon2id in a bounded pool: at most N hashes at once, and a full queue answers 503 at once."""

import threading

import pytest

from tests.apps.accounts.conftest import login
from vetpacs.apps.accounts import hashers
from vetpacs.apps.audit.models import AuditEvent


@pytest.fixture
def pool(settings):
    """A pool of 1 slot and a queue of 1 place, made afresh."""
    settings.VETPACS_ARGON2_CONCURRENCY = 1
    settings.VETPACS_ARGON2_QUEUE = 1
    hashers._pool = None
    yield
    hashers._pool = None


def test_a_hash_beyond_the_queue_is_refused_at_once_not_queued(pool):
    inside, release = threading.Event(), threading.Event()

    def slow():
        inside.set()
        release.wait(10)
        return "done"

    worker = threading.Thread(target=lambda: hashers.bounded(slow))
    worker.start()
    assert inside.wait(10)
    with pytest.raises(hashers.HashingBusy):
        hashers.bounded(lambda: "second")
    release.set()
    worker.join(10)
    assert hashers.bounded(lambda: "third") == "third"  # the slot is free again
    assert hashers._occupancy == 0


def test_at_most_pool_size_hashes_run_together(settings):
    settings.VETPACS_ARGON2_CONCURRENCY = 2
    settings.VETPACS_ARGON2_QUEUE = 50
    hashers._pool = None
    running, peak, lock = [0], [0], threading.Lock()

    def work():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.05)
        with lock:
            running[0] -= 1

    threads = [threading.Thread(target=lambda: hashers.bounded(work)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    hashers._pool = None
    assert peak[0] == 2


@pytest.mark.django_db
def test_a_login_that_finds_the_queue_full_gets_503_and_is_not_a_failure(client, make_user, clinic, pool):
    make_user("li", clinic)
    hashers._occupancy = 1  # the one place is taken
    try:
        resp = login(client, "li")
    finally:
        hashers._occupancy = 0
    assert resp.status_code == 503 and resp["Retry-After"] == "1"
    assert "登录的人较多" in resp.content.decode() and "try again" in resp.content.decode()
    assert not AuditEvent.objects.filter(action="login.failed").exists()
    assert login(client, "li").status_code == 302


@pytest.mark.django_db
def test_while_the_queue_is_full_a_login_post_is_turned_away_before_django_does_any_work(
    client, make_user, clinic, pool, django_assert_num_queries
):
    make_user("li", clinic)
    hashers._occupancy = 1
    try:
        with django_assert_num_queries(0):
            resp = login(client, "li")
        page = client.get("/login/")  # pages (no hashing) are still served
    finally:
        hashers._occupancy = 0
    assert resp.status_code == 503 and resp["Retry-After"] == "1"
    assert "请稍候" in resp.content.decode() and "Please wait" in resp.content.decode()
    assert page.status_code == 200
