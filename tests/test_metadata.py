"""metadata.json: every DJL file reads and writes back unchanged; defaults; broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repository import Item, MetadataError, dump_metadata, load_metadata
from repository.metadata import parse_metadata

DJL_FILES = sorted((Path(__file__).parent / "data" / "djl-metadata").glob("*.json"))


def test_all_djl_files_are_present() -> None:
    assert len(DJL_FILES) == 6


@pytest.mark.parametrize("path", DJL_FILES, ids=lambda path: path.name)
def test_djl_file_round_trips_without_losing_a_field(path: Path) -> None:
    metadata = load_metadata(path)
    assert metadata.artifacts
    assert json.loads(dump_metadata(metadata)) == json.loads(path.read_text())


def test_djl_fields_are_read_by_their_json_names() -> None:
    path = next(p for p in DJL_FILES if "pytorch-resnet" in p.name)
    metadata = load_metadata(path)
    assert (metadata.metadata_version, metadata.group_id, metadata.artifact_id) == (
        "0.2",
        "ai.djl.pytorch",
        "resnet",
    )
    assert metadata.application == "cv/image_classification"
    artifact = metadata.artifacts[0]
    assert artifact.properties == {"layers": "50", "dataset": "imagenet"}
    assert artifact.options == {"mapLocation": "true"}
    assert artifact.arguments["width"] == 224
    model = artifact.files["model"]
    assert model.sha1_hash == "dabcf25f827f4fa163a91899ea11f45e82c9fb60"
    assert model.size == 95229629
    assert model.key == "model" and model.artifact is artifact


@pytest.mark.parametrize(
    ("uri", "name", "item_type"),
    [
        ("https://h/x/synset.txt", "synset.txt", "file"),
        ("0.0.1/traced_resnet50.pt.gz", "traced_resnet50.pt", "file"),
        ("0.0.1/resnet101_v1.tar.gz", "resnet101_v1", "dir"),
        ("0.0.1/yolov8n.zip", "yolov8n", "dir"),
        ("0.0.1/cooking.ftz", "cooking.ftz", "file"),
        ("a/b/c.tar", "c", "dir"),
        # Case-insensitive, unlike DJL which keeps "x.TGZ" as the name.
        ("x.TGZ", "x", "dir"),
        ("A.TAR.GZ", "A", "dir"),
        ("m.ZIP", "m", "dir"),
        ("w.bin.ZST", "w.bin", "file"),
        ("w.tar.zst", "w", "dir"),
        ("w.tzst", "w", "dir"),
        ("https://h/m.tar.gz?x=1", "m", "dir"),
    ],
)
def test_item_defaults_derive_from_the_uri(uri: str, name: str, item_type: str) -> None:
    item = Item(uri=uri)
    assert (item.effective_name, item.effective_type) == (name, item_type)


def test_explicit_name_and_type_win_and_are_the_only_ones_written() -> None:
    item = Item.model_validate({"uri": "0.0.1/a.zip", "name": "", "type": "file"})
    assert (item.effective_name, item.effective_type) == ("", "file")
    assert Item(uri="0.0.1/a.zip").model_dump(by_alias=True, exclude_unset=True) == {
        "uri": "0.0.1/a.zip"
    }


def test_sha256_hash_beside_sha1_and_size_as_a_string() -> None:
    item = Item.model_validate(
        {"uri": "a.bin", "sha1Hash": "A" * 40, "sha256Hash": "b" * 64, "size": "12"}
    )
    assert item.hashes == {"sha1": "a" * 40, "sha256": "b" * 64}
    assert item.size == 12


def test_unknown_keys_are_kept_everywhere() -> None:
    text = json.dumps(
        {
            "metadataVersion": "0.2",
            "custom": {"x": 1},
            "artifacts": [
                {
                    "version": "1.0",
                    "channel": "beta",
                    "files": {"m": {"uri": "m.bin", "extension": "bin"}},
                }
            ],
        }
    )
    assert json.loads(dump_metadata(parse_metadata(text, source="t"))) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        ('{"metadataVersion": "0.2"}', "artifacts", "Field required"),
        ('{"artifacts": {}}', "artifacts", "list"),
        ('{"artifacts": [{"version": 1.5}]}', "artifacts.0.version", "string"),
        ('{"artifacts": [{"version": "1 0"}]}', "artifacts.0.version", "version"),
        ('{"artifacts": [{"properties": {"a": 1}}]}', "artifacts.0.properties.a", "string"),
        (
            '{"artifacts": [{"files": {"m": {"size": "big"}}}]}',
            "artifacts.0.files.m.size",
            "integer",
        ),
        (
            '{"artifacts": [{"files": {"m": {"sha1Hash": "xyz"}}}]}',
            "artifacts.0.files.m.sha1Hash",
            "sha1",
        ),
        (
            '{"artifacts": [{"files": {"m": {"sha256Hash": "ab"}}}]}',
            "artifacts.0.files.m.sha256Hash",
            "sha256",
        ),
        ('{"artifacts": [{"files": {"m": {"name": "../x"}}}]}', "artifacts.0.files.m.name", ".."),
        (
            '{"artifacts": [{"files": {"m": {"name": "/etc/x"}}}]}',
            "artifacts.0.files.m.name",
            "relative",
        ),
        (
            '{"artifacts": [{"files": {"m": {"type": "folder"}}}]}',
            "artifacts.0.files.m.type",
            "dir",
        ),
        ('{"artifacts": [], "lastUpdated": "yesterday"}', "lastUpdated", "datetime"),
    ],
)
def test_broken_metadata_names_the_file_and_the_field(
    text: str, field: str | None, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "metadata.json"
    path.write_text(text)
    with pytest.raises(MetadataError) as caught:
        load_metadata(path)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.source == str(path) and str(path) in str(error)
    assert error.field == field
    if field:
        assert repr(field) in str(error)
    assert fragment.lower() in str(error).lower()


def test_unreadable_file_is_a_metadata_error(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="cannot read"):
        load_metadata(tmp_path / "missing.json")


def test_last_updated_is_written_in_utc_in_djl_format() -> None:
    metadata = parse_metadata(
        '{"artifacts": [], "lastUpdated": "2026-11-20T20:20:00.023-08:00"}', source="t"
    )
    assert json.loads(dump_metadata(metadata))["lastUpdated"] == "2026-11-21T04:20:00.023Z"
