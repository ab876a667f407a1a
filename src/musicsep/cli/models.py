"""`musicsep models list | pull NAME | path`: what can run here, fetching weights, where they live."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, download and locate models")
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="the catalog and which models are on this machine")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_models)
    pull = commands.add_parser("pull", help="download a model's weights (needs internet)")
    pull.add_argument("name")
    pull.set_defaults(func=pull_model)
    path = commands.add_parser("path", help="folders searched for weights, in order")
    path.set_defaults(func=show_paths)


def _loader():
    from musicsep.config import get_settings
    from musicsep.model.loading import ModelLoader

    settings = get_settings()
    return ModelLoader.from_settings(settings)


def list_models(args: argparse.Namespace) -> int:
    from musicsep.model.catalog import load_catalog

    loader = _loader()
    rows = [
        {
            "name": info.name,
            "arch": info.arch,
            "stems": list(info.stems),
            "bag": info.bag,
            "available": loader.is_available(info.name),
            "quality": info.quality.text() if info.quality else None,
            "members": list(info.members) or None,
            "description": info.description,
        }
        for info in load_catalog().values()
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        mark = "yes" if row["available"] else "no "
        quality = f"  [{row['quality']}]" if row["quality"] else ""
        print(
            f"{row['name']:<27} {row['arch']:<17} local:{mark}  {','.join(row['stems']):<28} "
            f"{row['description']}{quality}"
        )
    return 0


def pull_model(args: argparse.Namespace) -> int:
    from musicsep.model.catalog import canonical_name, load_catalog
    from musicsep.model.errors import MusicsepError
    from musicsep.model.loading import download
    from musicsep.model.names import model_name

    loader = _loader()
    try:
        name = canonical_name(model_name(args.name))
        if loader.is_available(name):
            print(f"{name} is already on this machine")
            return 0
        info = load_catalog().get(name)
        if info is not None and info.arch not in ("demucs", "dsp"):
            return _pull_files(loader, info)
        download(name)  # huggingface_hub shows a progress bar per file on stderr
    except MusicsepError as exc:
        print(f"musicsep: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # the hub's and the legacy repository's errors alike
        print(f"musicsep: could not download {args.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 4
    print(f"{name} downloaded")
    return 0


def _pull_files(loader, info) -> int:
    """A UVR / MSST model (or each model of an ensemble preset) into the model folder."""
    from musicsep.model.catalog import load_catalog
    from musicsep.model.pull import pull_files

    if loader.repo is None:
        print(
            "musicsep: set MUSICSEP_MODEL_REPO to the folder the model files go to "
            "(a UVR or audio-separator model folder works as it is)",
            file=sys.stderr,
        )
        return 2
    members = [load_catalog()[member] for member in info.members] if info.arch == "ensemble" else [info]
    for member in members:
        fetched = pull_files(member, loader.repo, progress=sys.stderr.isatty())
        print(f"{member.name}: " + (f"downloaded {', '.join(fetched)}" if fetched else "already here"))
    return 0


def show_paths(args: argparse.Namespace) -> int:
    from huggingface_hub.constants import HF_HUB_CACHE

    from musicsep.model.folder import legacy_checkpoints

    loader = _loader()
    print(f"MUSICSEP_MODEL_REPO: {loader.repo or '(not set)'}")
    print(f"Hugging Face cache:  {HF_HUB_CACHE}")
    print(f"Demucs legacy cache: {legacy_checkpoints()}")
    return 0
