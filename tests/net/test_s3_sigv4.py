"""AWS Signature Version 4 as mirror.net.s3 computes it, against AWS's own published examples
(S3 API reference, "Signature Calculations for the Authorization Header", single chunk)."""

import datetime

import pytest

from mirror.net import s3

EXAMPLE = dict(region="us-east-1", access_key="AKIAIOSFODNN7EXAMPLE",
               secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
               now=datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc))


@pytest.mark.parametrize("url,headers,signed,signature", [
    ("https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"},
     "host;range;x-amz-content-sha256;x-amz-date",
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    ("https://examplebucket.s3.amazonaws.com/?lifecycle", {},
     "host;x-amz-content-sha256;x-amz-date",
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", {},
     "host;x-amz-content-sha256;x-amz-date",
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_signatures_match_the_published_examples(url, headers, signed, signature):
    out = s3.sigv4_headers("GET", url, headers=headers, **EXAMPLE)
    assert out["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}")
    assert out["x-amz-date"] == "20130524T000000Z" and out["x-amz-content-sha256"] == s3.EMPTY_SHA256


def test_the_secret_key_is_not_in_the_headers():
    out = s3.sigv4_headers("HEAD", "http://127.0.0.1:8333/b/k", **EXAMPLE)
    assert EXAMPLE["secret_key"] not in repr(out)
