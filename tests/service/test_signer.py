"""The link and stream-token signatures (service/signing.Signer): one signature, one field tuple."""

from __future__ import annotations

import time

import pytest

from musicsep.service.signing import Signer

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("signed", "other"),
    [
        (("stem", "a\nb", "c"), ("stem", "a", "b\nc")),
        (("stem\njob", "vocals", ""), ("stem", "job\nvocals", "")),
        (("events", "", "x\n"), ("events", "\nx", "")),
    ],
)
def test_field_tuples_that_joined_alike_with_newlines_sign_differently(signed, other):
    """Before: the signed message was the fields joined with newlines, so these pairs had one
    signature, and a link signed for one verified for the other."""
    expires = int(time.time()) + 3600
    signer = Signer(KEY)
    _, signature = signer.sign_until(*signed, expires)
    _, other_signature = signer.sign_until(*other, expires)
    assert signature != other_signature
    assert signer.verify(*signed, expires, signature)
    assert not signer.verify(*other, expires, signature)


def test_a_name_that_is_not_valid_unicode_text_is_refused_not_raised():
    """A lone surrogate cannot be encoded as UTF-8: verifying it is a plain False."""
    signer = Signer(KEY)
    expires, signature = signer.sign_until("stem", "0" * 32, "vocals", int(time.time()) + 60)
    assert signer.verify("stem", "0" * 32, "voc\udcffals", expires, signature) is False
