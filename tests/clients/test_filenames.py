"""Downloaded files get the song's name the server sends, in UTF-8 when it sends it so, and never
a path outside the folder they are saved to."""

from __future__ import annotations

import pytest

from musicsep.clients.filenames import filename_from

LINK = "/api/v1/jobs/3f2b/stems/vocals?expires=1&sig=abc"


def test_the_utf8_name_wins_over_the_ascii_fallback_whichever_comes_first():
    utf8 = "filename*=UTF-8''Mon%20Morceau%20pr%C3%A9f%C3%A9r%C3%A9%20-%20vocals.wav"
    ascii_name = 'filename="Mon Morceau prefere - vocals.wav"'
    for header in (f"attachment; {ascii_name}; {utf8}", f"attachment; {utf8}; {ascii_name}"):
        assert filename_from(header, LINK) == "Mon Morceau préféré - vocals.wav"
    assert filename_from(f"attachment; {ascii_name}", LINK) == "Mon Morceau prefere - vocals.wav"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="../../.bashrc"', ".bashrc"),
        ('attachment; filename="C:\\\\Users\\\\me\\\\evil.wav"', "evil.wav"),
        ('attachment; filename=".."', "vocals"),
        ("attachment; filename*=UTF-8''..%2F..%2Fx.wav", "x.wav"),
        ("", "vocals"),
    ],
)
def test_a_name_is_only_its_last_part_and_no_name_falls_back_to_the_link(header, expected):
    assert filename_from(header, LINK) == expected


def test_a_link_without_a_usable_name_saves_as_download():
    assert filename_from("", "http://127.0.0.1:9/") == "download"
