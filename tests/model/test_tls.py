"""The generated certificate's names and when it is issued again (pure)."""

from datetime import datetime, timedelta, timezone

from mirror.model.tls import RENEW_BEFORE, Issued, Name, generated_files, reissue_reason, server_names

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def names(*texts):
    return tuple(sorted(Name.of(t) for t in texts))


def test_names_are_the_client_address_host_name_bind_and_loopback():
    assert server_names("mirror.lan", "builder", "198.18.0.1") == names(
        "mirror.lan", "builder", "198.18.0.1", "localhost", "127.0.0.1", "::1")


def test_a_wildcard_bind_is_no_name_and_duplicates_go():
    assert server_names("", "builder", "0.0.0.0") == names("builder", "localhost", "127.0.0.1", "::1")
    assert server_names("127.0.0.1", "Builder.", "::") == names("builder", "localhost", "127.0.0.1", "::1")


def test_an_ip_client_address_is_an_ip_name_and_bracketed_ipv6_too():
    assert Name.of("198.18.0.1") == Name("ip", "198.18.0.1")
    assert Name.of("[fd00::1]") == Name("ip", "fd00::1")
    assert Name.of("Mirror.LAN") == Name("dns", "mirror.lan")
    assert str(Name.of("fd00::1")) == "IP:fd00::1"


def issued(names_, days_left=200, signed=True):
    return Issued(names_, NOW + timedelta(days=days_left), signed)


def test_kept_while_names_match_and_time_is_left():
    want = names("a.lan", "localhost", "127.0.0.1")
    assert reissue_reason(issued(want), want, NOW) is None


def test_issued_when_missing_foreign_or_names_changed():
    want = names("b.lan", "localhost")
    assert reissue_reason(None, want, NOW) == "there is none"
    assert "not signed by the CA" in reissue_reason(issued(want, signed=False), want, NOW)
    reason = reissue_reason(issued(names("a.lan", "localhost")), want, NOW)
    assert reason == "the names clients dial changed: adds DNS:b.lan; drops DNS:a.lan"


def test_issued_again_near_and_after_expiry():
    want = names("localhost")
    near = RENEW_BEFORE.days - 1
    assert reissue_reason(issued(want, near), want, NOW) == f"it expires on {(NOW + timedelta(days=near)):%Y-%m-%d}"
    assert reissue_reason(issued(want, -1), want, NOW).startswith("it expired on")
    assert reissue_reason(issued(want, RENEW_BEFORE.days + 1), want, NOW) is None


def test_generated_files_under_the_mirror_path():
    assert generated_files("/mirror/docker/") == ("/mirror/docker/tls/server.crt", "/mirror/docker/tls/server.key",
                                                  "/mirror/docker/tls/ca.crt")
