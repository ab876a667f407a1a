"""The parsers of what a caller sends back to us: signed links, stream tokens, `Last-Event-ID`.

Each takes text straight from a URL or a header, before any credential is checked, so each must
answer every input with a verdict (True/False, an id or a 400) and never raise anything else; and
the verifier must accept only what the key signed.
"""

from __future__ import annotations

import time

from hypothesis import assume, example, given
from hypothesis import strategies as st

from musicsep.api.errors import ApiError
from musicsep.api.streams import parse_last_event_id
from musicsep.service.signing import Signer

from .budget import budget, show

KEY = b"k" * 32
PURPOSES = st.sampled_from(["stem", "events"])
JOB_IDS = st.text("0123456789abcdef", min_size=32, max_size=32)
#: Unicode digits and other characters that `str.isdigit()` / `int()` treat specially.
TRICKY = st.sampled_from(["²", "٣", "߁", "𝟘", "+1", "-1", " 1", "1 ", "1_0", "1.0", "0x10", "١٢", "\u00a0", "", "é"])
#: What a query parameter or a header can carry: any text, numbers, tricky digits, or all of them mixed.
ANY_TEXT = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    TRICKY,
    st.lists(st.one_of(TRICKY, st.text(max_size=3)), max_size=6).map("".join),
)


#: Seconds from now to a link's expiry: drawn as an offset, so that an example run minutes after the
#: strategy was built (bench/fuzz.py) still signs an unexpired link. The top keeps 15 digits.
TTL = st.integers(60, 10**14)


def _expiry(ttl: int) -> int:
    return min(int(time.time()) + ttl, 10**15 - 1)


@budget(1500)
@given(
    purpose=st.one_of(PURPOSES, st.text(max_size=8)),
    job_id=st.one_of(JOB_IDS, st.text(max_size=40)),
    name=st.text(max_size=40),
    expires=st.one_of(st.integers(), ANY_TEXT),
    signature=ANY_TEXT,
)
@example(purpose="stem", job_id="0" * 32, name="vocals", expires=2**40, signature="é")
@example(purpose="stem", job_id="0" * 32, name="vocals", expires="²", signature="x")
@example(purpose="stem", job_id="0" * 32, name="vocals", expires="9" * 5000, signature="x")
def test_signer_verify_never_raises(purpose, job_id, name, expires, signature) -> None:
    show(purpose=purpose, job_id=job_id, name=name, expires=expires, signature=signature)
    assert Signer(KEY).verify(purpose, job_id, name, expires, signature) in (True, False)


@budget(1000)
@given(
    purpose=PURPOSES,
    job_id=JOB_IDS,
    name=st.text(max_size=40),
    ttl=TTL,
    other=st.tuples(PURPOSES, JOB_IDS, st.text(max_size=40), TTL),
    tamper=st.one_of(st.none(), ANY_TEXT),
)
def test_signer_accepts_only_what_the_key_signed(purpose, job_id, name, ttl, other, tamper) -> None:
    """A signature verifies for exactly its own (purpose, job, name, expiry), never for another
    link's, and no other signature text verifies; a different key's signature never does."""
    expires, other = _expiry(ttl), (*other[:3], _expiry(other[3]))
    show(signed=(purpose, job_id, name, expires), other=other, tamper=tamper)
    signer = Signer(KEY)
    _, sig = signer.sign_until(purpose, job_id, name, expires)
    assert signer.verify(purpose, job_id, name, expires, sig)
    assert signer.verify(purpose, job_id, name, str(expires), sig)
    if other != (purpose, job_id, name, expires):
        assert not signer.verify(*other, sig)
    if tamper is not None and tamper != sig:
        assert not signer.verify(purpose, job_id, name, expires, tamper)
    assert not Signer(b"j" * 32).verify(purpose, job_id, name, expires, sig)


@budget(1000)
@given(job_id=JOB_IDS, token=st.one_of(ANY_TEXT, st.builds("{}.{}".format, ANY_TEXT, ANY_TEXT)))
@example(job_id="0" * 32, token="².x")
@example(job_id="0" * 32, token="99999999999.é")
@example(job_id="0" * 32, token=".")
def test_stream_token_check_never_raises_and_refuses_what_was_not_issued(job_id, token) -> None:
    show(job_id=job_id, token=token)
    assert Signer(KEY).check_stream_token(job_id, token) is False


@budget(1000)
@given(job_id=JOB_IDS, other_job=JOB_IDS, ttl=st.integers(60, 10**6), edit=st.text(max_size=4), at=st.integers(0, 60))
def test_a_stream_token_opens_only_its_own_job(job_id, other_job, ttl, edit, at) -> None:
    """A real token is accepted for its job; for any other job, or edited anywhere in a way that
    names another expiry or another MAC, it is refused. (Leading zeros on the expiry name the
    same expiry and the same MAC: not a forgery, so an edit that keeps both is allowed to pass.)"""
    show(job_id=job_id, other_job=other_job, ttl=ttl, edit=edit, at=at)
    signer = Signer(KEY)
    token = signer.stream_token(job_id, ttl)
    assert signer.check_stream_token(job_id, token)
    assert signer.check_stream_token(other_job, token) is (other_job == job_id)
    edited = token[:at] + edit + token[at + len(edit) :]
    assume(edited != token)
    expires, _, mac = token.partition(".")
    new_expires, _, new_mac = edited.partition(".")
    if signer.check_stream_token(job_id, edited):
        assert new_mac == mac and new_expires.isascii() and int(new_expires) == int(expires)


@budget(1500)
@given(value=st.one_of(st.none(), ANY_TEXT, st.integers(0, 10**30).map(str)))
@example(value="²")
@example(value="1²")
@example(value="0" * 19)
@example(value="9" * 18)
def test_last_event_id_is_an_id_or_a_400(value) -> None:
    show(value=value)
    try:
        parsed = parse_last_event_id(value)
    except ApiError as refused:
        assert refused.status == 400
        assert value and not (value.isascii() and value.isdigit() and len(value) <= 18)
        return
    assert isinstance(parsed, int) and 0 <= parsed < 10**18
    assert parsed == (int(value) if value else 0)
