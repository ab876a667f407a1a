"""What a model name is: a name, never a path.

A name reaches the loader from a form field, a JSON body, a URL path, the CLI and jobs stored in
Redis; it becomes a file name in the model folder (`<name>.yaml`, `<name>.safetensors`) and a
Hugging Face repository name. Anything that could make it a path (separators, `..`, a leading dot,
NUL, control or non-ASCII characters) is refused here, once, before any disk is touched. Every
catalog name and every file name of Demucs's and UVR's model folders fits the rule.
"""

from __future__ import annotations

import re

from musicsep.model.errors import ModelUnavailable

#: The rule, also published in the OpenAPI document (`pattern` of the `model` fields).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
MODEL_NAME_MAX = 64
#: ASCII ranges spelled out: `\w` would take any Unicode letter or digit ("ｈｔdemucs", "²").
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

RULE = (
    f"model names are 1 to {MODEL_NAME_MAX} letters, digits, '_', '.' or '-', not starting with '.' "
    "(a name, not a path); GET /api/v1/models lists them"
)


class UnknownModel(ModelUnavailable):
    """A name that is neither in the catalog nor in the model folder: a typo, not a missing download.

    No fallback model is used for it (a typo should be seen, not hidden behind another model)."""


class InvalidModelName(UnknownModel):
    """A "name" that is not one (a path, an empty string, odd characters): refused before any lookup."""


def is_model_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def model_name(name: object) -> str:
    """`name` itself when it is a model name, else InvalidModelName (the error table's 422)."""
    if not is_model_name(name):
        raise InvalidModelName(f"{RULE}; got {_shown(name)}")
    assert isinstance(name, str)
    return name


def _shown(name: object) -> str:
    """The refused value in a message: quoted and escaped, cut short (it may be long or binary)."""
    text = ascii(name) if isinstance(name, str) else type(name).__name__
    return text if len(text) <= 80 else text[:77] + "..."
