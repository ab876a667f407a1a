"""Recognise a media container from its first bytes, before any decoder sees the file.

Why by hand: the server must answer 415 from the head of an upload, before the body is stored or
FFmpeg runs, and the decoder uses the same answer to pin FFmpeg to one demuxer instead of letting
it probe every format it knows (some of which follow playlists or open other files). The checks
are the containers' documented magic numbers; `python-magic`/`filetype` would add a dependency
for a dozen comparisons and still need the mapping to FFmpeg demuxers below.
"""

from __future__ import annotations

#: Our container name -> the FFmpeg demuxer the decoder is pinned to.
DEMUXERS: dict[str, str] = {
    "wav": "wav",
    "w64": "w64",
    "aiff": "aiff",
    "flac": "flac",
    "mp3": "mp3",
    "aac": "aac",
    "ogg": "ogg",
    "mp4": "mov",
    "matroska": "matroska",
    "caf": "caf",
    "au": "au",
    "asf": "asf",
    "wavpack": "wv",
}

#: Bytes `sniff_format` needs to tell every container apart.
HEAD_BYTES = 16

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_W64_RIFF_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")
_EBML = b"\x1a\x45\xdf\xa3"
#: Top-level atoms an ISO-BMFF / QuickTime file may start with (ftyp in everything modern).
_MP4_ATOMS = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def sniff_format(head: bytes) -> str | None:
    """Return the container name for a file starting with `head`, or None if we do not decode it.

    `head` should hold at least `HEAD_BYTES` bytes (fewer are fine for the shorter signatures).
    Text, images, archives and random bytes give None.
    """
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:16] == _W64_RIFF_GUID:
        return "w64"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == _EBML:
        return "matroska"
    if head[4:8] in _MP4_ATOMS:
        return "mp4"
    if head[:4] == b"caff":
        return "caf"
    if head[:4] == b".snd":
        return "au"
    if head[:16] == _ASF_GUID:
        return "asf"
    if head[:4] == b"wvpk":
        return "wavpack"
    if head[:3] == b"ID3":
        # An ID3v2 tag precedes MP3 audio; FFmpeg's mp3 demuxer skips it.
        return "mp3"
    return _sniff_frame_sync(head)


def _sniff_frame_sync(head: bytes) -> str | None:
    """MPEG audio (mp1/2/3) or ADTS AAC frames: 11 sync bits, then header fields with invalid values."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    if layer == 0:
        # ADTS: MPEG-4 (0b10) or MPEG-2 (0b11) id with layer 00; sampling index 13-15 is invalid.
        is_adts = version in (0b10, 0b11) and (head[2] >> 2) & 0x0F < 13
        return "aac" if is_adts else None
    bitrate_index = head[2] >> 4
    samplerate_index = (head[2] >> 2) & 0b11
    if version == 0b01 or bitrate_index == 0x0F or samplerate_index == 0b11:
        return None
    return "mp3"
