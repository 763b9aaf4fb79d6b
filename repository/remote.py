"""``RemoteRepository``: a DJL-layout repository over HTTP(S).

``locate`` GETs ``<base>/<mrl path>metadata.json`` and keeps a copy in the cache, stamped with
its fetch time (``lastUpdated``, UTC). A copy younger than ``metadata_ttl`` is used with no
request at all; an older one is revalidated (``If-None-Match``/``If-Modified-Since``), and used
with a warning when the refresh fails. In offline mode the copy is used whatever its age, and
nothing is ever sent.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import httpx

from repository.base import Repository
from repository.errors import DownloadError, MetadataError, OfflineError
from repository.extract import ExtractionLimits
from repository.metadata import Item, Metadata, dump_metadata, parse_metadata, relative_uri_path
from repository.mrl import MRL
from repository.transfer import HttpTransport, RetryPolicy, redact_url

__all__ = ["RemoteRepository", "RemoteRepositoryFactory"]

_PLAIN_RELATIVE = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~/-]*")

logger = logging.getLogger(__name__)

TOKEN_ENV = "REPOSITORY_TOKEN"
DEFAULT_METADATA_TTL = 86_400.0
# DJL's largest metadata.json files are a few KiB; anything this big is not metadata.
MAX_METADATA_BYTES = 16 << 20
_VALIDATORS = "validators.json"


class RemoteRepository(Repository):
    """A folder of ``<mrl path>/metadata.json`` files served over HTTP(S).

    :param url: the repository's base URL; ``user:password@`` in it is used as basic
        authentication and never shown.
    :param token: a bearer token, sent only to the repository's own origin.
    :param headers: extra headers, sent only to the repository's own origin.
    :param offline: never use the network (default: ``$REPOSITORY_OFFLINE``).
    :param metadata_ttl: seconds a cached metadata.json is used without asking the server.
    :param max_workers: items of one artifact downloaded at once.
    :param timeout: httpx timeout (default 10 s to connect, 30 s between reads).
    :param retry: how transient failures are retried.
    """

    is_remote = True

    def __init__(
        self,
        name: str,
        url: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        extraction_limits: ExtractionLimits | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        netrc_file: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
        metadata_ttl: float = DEFAULT_METADATA_TTL,
        max_workers: int = 8,
        timeout: httpx.Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {redact_url(url)}")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        transport = HttpTransport(
            urlunsplit((parts.scheme, parts.netloc, path, "", "")),
            token=token,
            headers=headers,
            netrc_file=netrc_file,
            timeout=timeout,
            retry=retry,
            offline=offline,
            max_connections=max_workers,
            client=client,
        )
        assert transport.base_url is not None
        super().__init__(
            name, transport.base_url, cache_dir=cache_dir, extraction_limits=extraction_limits
        )
        self._http = transport
        self.arguments = dict(parse_qsl(parts.query))
        self.metadata_ttl = metadata_ttl
        self.max_workers = max_workers
        self._resource_urls: dict[MRL, str] = {}

    def __repr__(self) -> str:
        return f"<RemoteRepository {self.name!r} {redact_url(self.base_uri)}>"

    @property
    def offline(self) -> bool:
        """True when no request may be sent."""
        return self._http.offline if self._http is not None else False

    def _metadata_copy(self, mrl: MRL) -> Path:
        return self.cache_directory / "metadata" / mrl.path / "metadata.json"

    def locate(self, mrl: MRL) -> Metadata | None:
        """The metadata of ``mrl``: the cached copy while fresh, else from the server.

        :raises OfflineError: in offline mode when no copy is cached.
        :raises DownloadError: when the server fails and no copy is cached.
        :raises MetadataError: when the server's metadata is broken and no copy is cached.
        """
        url = urljoin(self.base_uri, mrl.path + "metadata.json")
        shown = redact_url(url)
        copy = self._metadata_copy(mrl)
        cached = self._cached_metadata(copy, mrl)
        if cached is not None and (self.offline or self._is_fresh(cached)):
            return cached
        if self.offline:
            raise OfflineError(
                f"Offline mode and no cached metadata for {mrl}: it needs {shown}", url=shown
            )
        validators = self._validators(copy) if cached is not None else {}
        try:
            response, body = self.http_transport.get_bytes(
                url, validators, max_bytes=MAX_METADATA_BYTES
            )
            if response.status_code == 304 and cached is not None:
                return self._store(copy, mrl, cached, response)
            metadata = parse_metadata(body, source=shown)
        except DownloadError as exc:
            if exc.status in (404, 410):
                return None
            if cached is None:
                raise
            logger.warning("Using cached metadata of %s: refreshing it failed: %s", mrl, exc)
            return cached
        except MetadataError as exc:
            if cached is None:
                raise
            logger.warning("Using cached metadata of %s: the server's copy is broken: %s", mrl, exc)
            return cached
        return self._store(copy, mrl, metadata, response)

    def _cached_metadata(self, copy: Path, mrl: MRL) -> Metadata | None:
        try:
            metadata = self._read_metadata_file(
                copy, mrl, redact_url(urljoin(self.base_uri, mrl.path + "metadata.json"))
            )
        except MetadataError as exc:
            logger.warning("Ignoring a broken cached copy %s: %s", copy, exc)
            return None
        if metadata is not None:
            for artifact in metadata.artifacts:
                artifact.arguments.update(self.arguments)
        return metadata

    def _is_fresh(self, metadata: Metadata) -> bool:
        if metadata.last_updated is None:
            return False
        age = (datetime.now(UTC) - metadata.last_updated).total_seconds()
        return 0 <= age < self.metadata_ttl

    @staticmethod
    def _validators(copy: Path) -> dict[str, str]:
        try:
            stored = json.loads((copy.parent / _VALIDATORS).read_text())
        except (OSError, ValueError):
            return {}
        headers = {}
        if stored.get("etag"):
            headers["If-None-Match"] = stored["etag"]
        if stored.get("last_modified"):
            headers["If-Modified-Since"] = stored["last_modified"]
        return headers

    def _store(
        self, copy: Path, mrl: MRL, metadata: Metadata, response: httpx.Response
    ) -> Metadata:
        """Stamp the fetch time, write the copy atomically, and return the bound metadata."""
        metadata.last_updated = datetime.now(UTC)
        for artifact in metadata.artifacts:
            artifact.arguments.update(self.arguments)
        validators = {
            "etag": response.headers.get("etag"),
            "last_modified": response.headers.get("last-modified"),
        }
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            scratch = copy.with_name(f".metadata.json.{os.getpid()}.new")
            scratch.write_text(dump_metadata(metadata, indent=None), encoding="utf-8")
            os.replace(scratch, copy)
            (copy.parent / _VALIDATORS).write_text(json.dumps(validators))
        except OSError as exc:  # a read-only cache still serves what it has
            logger.warning("Cannot cache metadata of %s in %s: %s", mrl, copy, exc.strerror)
        return metadata.bind(mrl, redact_url(urljoin(self.base_uri, mrl.path + "metadata.json")))

    def get_resources(self) -> list[MRL]:
        """The MRLs whose metadata this cache holds (an HTTP server cannot be listed)."""
        root = self.cache_directory / "metadata"
        resources = []
        for copy in sorted(root.rglob("metadata.json")):
            try:
                metadata = self._read_metadata_file(copy, None)
                kind = copy.relative_to(root).parts[0]
                factory = MRL.model if kind == "model" else MRL.dataset
                if metadata is not None and metadata.application and metadata.group_id:
                    resources.append(
                        factory(metadata.application, metadata.group_id, metadata.artifact_id or "")
                    )
            except (MetadataError, ValueError) as exc:
                logger.warning("Skipping %s: %s", copy, exc)
        return resources

    def _item_url(self, item: Item) -> str:
        uri = item.uri or item.key
        scheme = urlsplit(uri).scheme.lower() if ":" in uri else ""
        if scheme in ("http", "https"):
            return uri
        if scheme:
            metadata = item.artifact.metadata
            raise MetadataError(
                f"{metadata.source}: item {item.key!r} of a remote repository has a {scheme}: uri",
                source=metadata.source,
                field=f"files.{item.key}.uri",
            )
        if not uri.startswith("/"):
            try:
                relative_uri_path(uri)
            except ValueError as exc:
                metadata = item.artifact.metadata
                raise MetadataError(
                    f"{metadata.source}: item {item.key!r}: {exc}",
                    source=metadata.source,
                    field=f"files.{item.key}.uri",
                ) from None
        base = self._resource_url(item.artifact.metadata.mrl)
        if _PLAIN_RELATIVE.fullmatch(uri) and "/." not in uri and base.endswith("/"):
            return base + uri  # what urljoin gives, without its parsing (asked once per item)
        return urljoin(base, uri)

    def _resource_url(self, mrl: MRL) -> str:
        """``<base>/<mrl path>``, joined once per MRL (items of an artifact share it)."""
        url = self._resource_urls.get(mrl)
        if url is None:
            url = self._resource_urls[mrl] = urljoin(self.base_uri, mrl.path)
        return url


class RemoteRepositoryFactory:
    """The ``http`` and ``https`` schemes. A token is taken from ``$REPOSITORY_TOKEN``."""

    def supported_schemes(self) -> set[str]:
        """``{"http", "https"}``."""
        return {"http", "https"}

    def new_instance(self, name: str, uri: str) -> Repository:
        """A :class:`RemoteRepository` for ``uri``."""
        return RemoteRepository(name, uri, token=os.environ.get(TOKEN_ENV) or None)
