"""bcrypt entries as the product checks and makes them (pyca's bcrypt), against digests made
by the tools that write htpasswd files: Apache's `htpasswd -B` (apache2-utils, run here)
and the host's crypt(3), which the product used before (fixed digests it made once).

The registry checks the same files with Go's bcrypt, which uses the first 72 bytes
of a password, as htpasswd -B and crypt(3) do: so must the status page.
"""

from __future__ import annotations

import subprocess

import pytest

from mirror.config import settings
from mirror.errors import HostError
from mirror.host import credential, htpasswd
from mirror.host.layout import Layout
from support.configs import write_config

# Made by the previous version's credential._bcrypt (libxcrypt's crypt(3) through ctypes,
# cost 10): what config/mirror-credential holds in an existing mirror directory.
CRYPT3_KEPT = ("kept-password-from-crypt3", "$2b$10$S/wPjTJpoIe6U7gyhbe6let93RBP3YMFO1wGVNX0htiLhIeSUzz4C")
# crypt(3) with a `$2a$` salt (cost 5), and with an 80-byte password (40 × "é"), which it cut to 72.
CRYPT3_2A = ("wonder land", "$2a$05$pXHgaGpZGXI9lYPIx.VVluQVxmPR3qwQH7pIymoXCizmswy3ixyIe")
CRYPT3_LONG = ("é" * 40, "$2b$05$Qi1Q79OdOSXkt9jCt7U9/.yF9h9dugOwKzSyov6J3qWdTJ3wo3ae2")


def htpasswd_b(user: str, password: str) -> str:
    """The line `htpasswd -nbB -C 5 USER PASSWORD` prints (cost 5: fast, and as valid)."""
    out = subprocess.run(["htpasswd", "-nbB", "-C", "5", user, password], check=True,
                         capture_output=True, text=True).stdout
    return out.strip()


@pytest.mark.parametrize("password", ["wonder land", "pässwörd:with colon", "x"])
def test_htpasswd_b_entries_match_their_password_only(password):
    user, _, digest = htpasswd_b("alice", password).partition(":")
    assert user == "alice" and digest.startswith("$2y$05$")
    assert htpasswd.bcrypt_matches(password, digest)
    assert not htpasswd.bcrypt_matches(password + "x", digest)
    assert not htpasswd.bcrypt_matches(password[:-1], digest)
    assert not htpasswd.bcrypt_matches(password + "\0", digest)


def test_a_password_over_72_bytes_is_checked_on_its_first_72_as_htpasswd_wrote_it(tmp_path):
    long = "correct horse battery staple " * 4          # 116 bytes
    digest = htpasswd_b("alice", long).partition(":")[2]
    assert htpasswd.bcrypt_matches(long, digest)
    assert htpasswd.bcrypt_matches(long[:72] + "anything after", digest)
    assert not htpasswd.bcrypt_matches(long[:71], digest)
    (tmp_path / "htpasswd").write_text(f"alice:{digest}\n")
    users = htpasswd.Users(str(tmp_path / "htpasswd"))      # the status page's check
    assert users.check("alice", long) and not users.check("alice", long[:71])


@pytest.mark.parametrize("password,digest", [CRYPT3_KEPT, CRYPT3_2A, CRYPT3_LONG],
                         ids=["2b-kept-credential", "2a", "2b-80-bytes"])
def test_digests_made_by_crypt3_still_match(password, digest):
    assert htpasswd.bcrypt_matches(password, digest)
    assert not htpasswd.bcrypt_matches(password.upper(), digest)


def test_a_crypt3_digest_of_a_long_password_matches_its_first_72_bytes():
    password, digest = CRYPT3_LONG
    assert len(password.encode()) == 80
    assert htpasswd.bcrypt_matches("é" * 36, digest)             # the same 72 bytes
    assert not htpasswd.bcrypt_matches("é" * 35, digest)


@pytest.mark.parametrize("digest", ["", "$2y$05$short", "$2y$05$" + "a" * 53, "$1$abc$def",
                                    "$2y$99$" + "a" * 53, "$2y$05$" + "!" * 53, "{SHA}abc="])
def test_a_digest_bcrypt_cannot_read_is_no_match_not_an_error(digest):
    assert htpasswd.bcrypt_matches("wonder land", digest) is False


def test_the_products_own_digests_are_2b_cost_10_and_apache_accepts_them(tmp_path):
    digest = credential._bcrypt("the mirror's password")
    assert digest.startswith("$2b$10$") and len(digest) == 60
    assert digest != credential._bcrypt("the mirror's password")       # a new salt each time
    assert htpasswd.bcrypt_matches("the mirror's password", digest)
    users = tmp_path / "htpasswd"
    users.write_text(f"docker-mirror:{digest}\n")
    check = lambda password: subprocess.run(["htpasswd", "-vb", str(users), "docker-mirror", password],
                                            capture_output=True, text=True)
    assert check("the mirror's password").returncode == 0
    assert check("the mirror's passwor").returncode != 0


def test_a_password_bcrypt_cannot_hash_is_a_host_error():
    with pytest.raises(HostError) as err:
        credential._bcrypt("p" * 73)
    assert str(err.value) == "cannot make an htpasswd entry: the password has 73 bytes, bcrypt takes at most 72"


def test_an_existing_mirror_directorys_credential_is_kept_and_still_valid(tmp_path):
    users = tmp_path / "users"
    users.write_text(htpasswd_b("alice", "wonder land") + "\n")
    loaded = settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                                        DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users)))
    layout = Layout.of(loaded)
    layout.config_dir.mkdir(parents=True)
    password, digest = CRYPT3_KEPT
    kept = credential.credential_path(layout)
    kept.write_text(f"docker-mirror\n{password}\n{digest}\n")   # as the previous version wrote it
    kept.chmod(0o600)
    before = kept.stat().st_mtime_ns

    merged = credential.ensure(loaded, layout)
    assert kept.read_text() == f"docker-mirror\n{password}\n{digest}\n" and kept.stat().st_mtime_ns == before
    assert merged.read_text().splitlines()[-1] == f"docker-mirror:{digest}"
    assert credential.of(loaded) == ("docker-mirror", password)
    checker = htpasswd.Users(str(merged))
    assert checker.check("docker-mirror", password) and checker.check("alice", "wonder land")
    assert not checker.check("docker-mirror", "wonder land")
