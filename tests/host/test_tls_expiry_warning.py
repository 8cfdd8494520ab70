"""Status warns, and exits 1, when the mirror's certificate is within 30 days of its end or
past it, naming who fixes it. Certificates made by openssl, short-lived; the clock is the
argument status takes, so "past its end" needs no waiting."""

import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from mirror.config import settings as settings_mod
from mirror.host import tls
from mirror.model.tls import expiry_warning
from mirror.services import status
from support.configs import write_config

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def openssl_certificate(tmp_path, days: int):
    cert, key = tmp_path / "given.crt", tmp_path / "given.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def given(tmp_path, days: int, **overrides):
    cert, key = openssl_certificate(tmp_path, days)
    path = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"),
                        DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GENERATE=False,
                        DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key), **overrides)
    return settings_mod.load(path)


def document(tls_status):
    # What exit_code reads: a mirror that answers, so only the certificate can fail it.
    return {"enabled": True, "tls": tls_status, "upstreams": [{"answering": True}]}


def test_a_given_certificate_with_4_days_left_warns_and_says_to_replace_it(tmp_path):
    s = given(tmp_path, days=4)
    said = tls.status(s)
    assert said["days_left"] in (3, 4)
    assert "expires on" in said["warning"] and "a given certificate" in said["warning"]
    assert "replace it" in said["warning"]
    assert status.exit_code(document(said)) == 1


def test_an_expired_given_certificate_says_expired_not_negative_days(tmp_path):
    s = given(tmp_path, days=1)
    later = datetime.now(timezone.utc) + timedelta(days=372)
    said = tls.status(s, later)
    assert said["days_left"] < 0
    assert "expired on" in said["warning"] and "days ago" in said["warning"] and "replace it" in said["warning"]
    assert status.exit_code(document(said)) == 1


def test_a_certificate_with_more_than_30_days_left_is_fine(tmp_path):
    said = tls.status(given(tmp_path, days=90))
    assert said["warning"] is None and status.exit_code(document(said)) == 0


@pytest.mark.parametrize("days, warned", [(4, True), (90, False)])
def test_the_status_text_warns_and_the_exit_code_follows(tmp_path, days, warned):
    doc = status.gather(given(tmp_path, days=days), None, headroom=False)
    text = status.format_text(doc)
    assert ("WARNING: the certificate expires on" in text) == warned, text
    assert ("a given certificate (DOCKER_MIRROR_TLS_CERTIFICATE): replace it" in text) == warned
    for upstream in doc["upstreams"]:   # as if every mirror answered: only the certificate counts
        upstream["answering"] = True
    assert status.exit_code(doc) == (1 if warned else 0)


def test_a_generated_certificate_names_the_keeper_or_setup(tmp_path):
    path = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"),
                        DOCKER_MIRROR_TLS=True)
    s = settings_mod.load(path)
    tls.ensure(s)
    end = datetime.now(timezone.utc) + timedelta(days=397)
    said = tls.status(s, end - timedelta(days=10))
    assert "re-issued by the keeper" in said["warning"] and status.exit_code(document(said)) == 1


@pytest.mark.parametrize("left, generated, keeper, words", [
    (timedelta(days=29, hours=23), True, True, ["expires on 2027-01-06, in 29 days", "re-issued by the keeper"]),
    (timedelta(days=-371), True, False, ["expired on 2025-12-01 (371 days ago)", "the keeper is off"]),
    (timedelta(seconds=-1), False, True, ["expired on 2026-12-07 (today)", "a given certificate"]),
])
def test_the_warning_names_the_date_and_who_fixes_it(left, generated, keeper, words):
    warning = expiry_warning(NOW + left, NOW, generated, keeper)
    assert all(w in warning for w in words), warning


def test_no_warning_with_30_days_left():
    assert expiry_warning(NOW + timedelta(days=30), NOW, True, True) is None
