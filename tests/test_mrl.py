"""MRL paths equal DJL's toURI(); parts that could not be paths are refused."""

from __future__ import annotations

import pytest

from repository import MRL, InvalidMRLError


@pytest.mark.parametrize(
    ("mrl", "path"),
    [
        (
            MRL.model("cv/image_classification", "ai.djl.pytorch", "resnet"),
            "model/cv/image_classification/ai/djl/pytorch/resnet/",
        ),
        (
            MRL.dataset("cv", "ai.djl.basicdataset", "mnist"),
            "dataset/cv/ai/djl/basicdataset/mnist/",
        ),
        (
            MRL.dataset(
                "nlp", "ai.djl.basicdataset.universal-dependencies", "universal-dependencies-en-ewt"
            ),
            "dataset/nlp/ai/djl/basicdataset/universal-dependencies/universal-dependencies-en-ewt/",
        ),
        (MRL.undefined("ai.djl.localmodelzoo", "mlp"), "undefined/ai/djl/localmodelzoo/mlp/"),
        (
            MRL.model("undefined", "ai.djl.localmodelzoo", "0a1b"),
            "model/undefined/ai/djl/localmodelzoo/0a1b/",
        ),
    ],
)
def test_path_is_djl_to_uri(mrl: MRL, path: str) -> None:
    assert mrl.path == path


@pytest.mark.parametrize(
    "text",
    ["model/cv/image_classification/ai.djl.pytorch/resnet", "dataset/tabular/ai.djl.example/iris"],
)
def test_parse_round_trips(text: str) -> None:
    assert str(MRL.parse(text)) == text


@pytest.mark.parametrize(
    "factory_args",
    [
        ("cv", "ai..djl", "x"),
        ("cv", "ai.djl", "../x"),
        ("../cv", "ai.djl", "x"),
        ("cv", "ai.djl", "x y"),
        ("/cv", "ai.djl", "x"),
        ("cv", "ai.djl", ""),
        ("cv", "ai.djl", "a/b"),
    ],
)
def test_parts_that_cannot_be_paths_are_refused(factory_args: tuple[str, str, str]) -> None:
    with pytest.raises(InvalidMRLError) as caught:
        MRL.model(*factory_args)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("text", ["model/ai.djl/x", "weights/cv/ai.djl/x", "model"])
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(InvalidMRLError, match="type/application/group/artifact"):
        MRL.parse(text)
