"""MRL: the address of a resource in a repository (type / application / group / artifact).

``MRL.path`` equals DJL's ``MRL.toURI()``: ``model/cv/image_classification/ai/djl/pytorch/resnet/``.
Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from repository.errors import InvalidMRLError

__all__ = ["MRL", "ResourceType"]

ResourceType = Literal["model", "dataset", ""]

UNDEFINED_APPLICATION = "undefined"

# Each part becomes one or more path segments in repositories and in the cache, so it must not be
# able to climb, be absolute or hide a separator. DJL fails on the same characters (URI syntax).
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]*")


def _check_segments(value: str, separator: str, what: str) -> None:
    segments = value.split(separator)
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or segment in {".", ".."}:
            raise InvalidMRLError(f"Invalid MRL {what}: {value!r}", value=value)


@dataclass(frozen=True, slots=True)
class MRL:
    """A Machine learning Resource Locator: what a repository serves, without a version.

    >>> mrl = MRL.model("cv/image_classification", "ai.djl.pytorch", "resnet")
    >>> mrl.path
    'model/cv/image_classification/ai/djl/pytorch/resnet/'
    >>> str(mrl)
    'model/cv/image_classification/ai.djl.pytorch/resnet'
    >>> MRL.parse(str(mrl)) == mrl
    True
    """

    type: ResourceType
    application: str
    group_id: str
    artifact_id: str

    def __post_init__(self) -> None:
        if self.type not in ("model", "dataset", ""):
            raise InvalidMRLError(f"Invalid MRL type: {self.type!r}", value=self.type)
        _check_segments(self.application, "/", "application")
        _check_segments(self.group_id, ".", "group id")
        _check_segments(self.artifact_id, "/", "artifact id")
        if "/" in self.artifact_id:
            raise InvalidMRLError(
                f"Invalid MRL artifact id: {self.artifact_id!r}", value=self.artifact_id
            )

    @classmethod
    def model(cls, application: str, group_id: str, artifact_id: str) -> MRL:
        """The MRL of a model."""
        return cls("model", application, group_id, artifact_id)

    @classmethod
    def dataset(cls, application: str, group_id: str, artifact_id: str) -> MRL:
        """The MRL of a data set."""
        return cls("dataset", application, group_id, artifact_id)

    @classmethod
    def undefined(cls, group_id: str, artifact_id: str) -> MRL:
        """An MRL with no type and the ``undefined`` application (DJL's ``MRL.undefined``)."""
        return cls("", UNDEFINED_APPLICATION, group_id, artifact_id)

    @classmethod
    def parse(cls, text: str) -> MRL:
        """Parse ``type/application/group/artifact``; the application may hold slashes.

        :raises InvalidMRLError: when the text has too few parts or an invalid one.

        >>> MRL.parse("dataset/cv/ai.djl.basicdataset/mnist").path
        'dataset/cv/ai/djl/basicdataset/mnist/'
        """
        parts = text.strip("/").split("/")
        if len(parts) < 4 or parts[0] not in ("model", "dataset"):
            raise InvalidMRLError(
                f"Invalid MRL {text!r}: expected type/application/group/artifact, "
                "e.g. model/cv/image_classification/ai.djl.pytorch/resnet",
                value=text,
            )
        type_: ResourceType = "model" if parts[0] == "model" else "dataset"
        return cls(type_, "/".join(parts[1:-2]), parts[-2], parts[-1])

    @property
    def path(self) -> str:
        """The relative path of this resource in a repository, ending in ``/`` (DJL's ``toURI``)."""
        prefix = f"{self.type}/" if self.type else ""
        group_path = self.group_id.replace(".", "/")
        return f"{prefix}{self.application}/{group_path}/{self.artifact_id}/"

    def __str__(self) -> str:
        prefix = f"{self.type}/" if self.type else ""
        return f"{prefix}{self.application}/{self.group_id}/{self.artifact_id}"
