"""The ``Repository`` base class: locate and open are abstract; resolve and prepare are concrete."""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from repository.cache import MANIFEST_NAME, cache_root, path_segment, repository_key
from repository.cache_admin import ensure_cachedir_tag
from repository.errors import (
    ChecksumMismatchError,
    DownloadError,
    ExtractionError,
    InstallError,
    MetadataError,
    RepositoryError,
)
from repository.extract import ExtractionLimits
from repository.hashing import Readable
from repository.install import (
    InstalledItem,
    SourceChangedError,
    install_body,
    install_error,
    install_file,
    install_item,
    publish,
    read_sources_digest,
    remove_abandoned,
    remove_directory,
    remove_tree,
    source_reader,
    wants_whole_file,
    work_directory,
    write_manifest,
)
from repository.locks import work_lock
from repository.manifest import Manifest, sources_digest
from repository.metadata import Artifact, Item, Metadata, check_relative_name, load_metadata
from repository.mrl import MRL
from repository.overlap import consume_overlapped
from repository.progress import (
    Progress,
    ProgressCallback,
    ProgressOption,
    known_total,
    progress_for,
)
from repository.version import Version, VersionRange

if TYPE_CHECKING:
    from repository.transfer import HttpTransport, Partial, PartialDownloads
    from repository.verify import VerifyReport

__all__ = ["ProgressCallback", "Repository"]

logger = logging.getLogger(__name__)


class Repository(abc.ABC):
    """A place that serves artifacts by MRL, version and properties.

    Subclasses say how to find metadata (:meth:`locate`, :meth:`get_resources`) and how to read
    an item's raw bytes (:meth:`_open_item`); resolving, preparing into the cache and reading
    prepared files are common to all of them.
    """

    #: True when items are fetched (and so prepared into the cache) rather than used in place.
    is_remote: bool = False
    #: How many items of one artifact are installed at once.
    max_workers: int = 1
    #: Seconds to wait for another process preparing the same artifact before doing it anyway.
    lock_timeout: float = 1800.0
    #: Items declared smaller than this many bytes download without a partial file on disk, so
    #: an interrupted one resumes within the process only (a later process fetches it again).
    small_item_size: int = 1 << 20
    #: From this many small http(s) items in an artifact, they are fetched by HTTP/1.1
    #: pipelining (see :mod:`repository.pipelining`) before the rest.
    pipelining_from: int = 8

    def __init__(
        self,
        name: str,
        base_uri: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        extraction_limits: ExtractionLimits | None = None,
    ) -> None:
        self.name = name
        self.base_uri = base_uri
        self._cache_root = cache_root(cache_dir)
        self.extraction_limits = extraction_limits or ExtractionLimits()
        self._http: HttpTransport | None = None
        self._parsed_metadata: dict[Path, tuple[tuple[int, int], Metadata]] = {}

    @staticmethod
    def new_instance(
        name: str,
        location: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Repository:
        """Create the repository for a path or URL, chosen by its scheme.

        :raises UnsupportedSchemeError: when no factory serves the scheme.
        """
        from repository.registry import new_repository

        return new_repository(name, location, cache_dir=cache_dir)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.base_uri}>"

    # -- what subclasses provide -------------------------------------------------------------

    @abc.abstractmethod
    def locate(self, mrl: MRL) -> Metadata | None:
        """The metadata of ``mrl``, or None when this repository does not serve it.

        :raises MetadataError: when the metadata exists but is broken.
        """

    @abc.abstractmethod
    def get_resources(self) -> list[MRL]:
        """Every MRL this repository serves."""

    def _open_item(self, item: Item) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open the raw bytes of an item that has no http(s) URL, for one sequential read.

        :raises DownloadError: when they cannot be read.
        """
        raise DownloadError(
            f"{type(self).__name__} cannot read item {item.key!r} ({item.uri})", url=item.uri or ""
        )

    def _read_metadata_file(
        self, file: Path, mrl: MRL | None, source: str | None = None
    ) -> Metadata | None:
        """Parse a metadata.json file, once per change of it; None when it does not exist.

        :raises MetadataError: when it exists but is broken.
        """
        try:
            stat = file.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._parsed_metadata.get(file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        metadata = load_metadata(file)
        if mrl is not None:
            metadata.bind(mrl, source or str(file))
        self._parsed_metadata[file] = (stamp, metadata)
        return metadata

    def _local_item_file(self, item: Item) -> Path | None:
        """The item's raw bytes as a local file, when they are one (lets zips skip a spool)."""
        return None

    def _item_fingerprint(self, item: Item) -> dict[str, Any]:
        """What identifies an item's content; a prepared artifact is reused while it is the same."""
        return {"uri": item.uri, "size": item.size, **item.hashes}

    # -- cache paths -------------------------------------------------------------------------

    @property
    def cache_directory(self) -> Path:
        """This repository's own folder in the cache."""
        return self._cache_root / "repos" / repository_key(self.base_uri)

    @property
    def cache_root(self) -> Path:
        """The root of the cache this repository writes to."""
        return self._cache_root

    @cache_root.setter
    def cache_root(self, path: Path) -> None:
        self._cache_root = path

    def get_resource_directory(self, artifact: Artifact) -> Path:
        """Where ``artifact`` is (or will be) prepared: ``<mrl path>/<version>/<name>/``.

        :raises MetadataError: when the version or name cannot be a folder name.
        """
        metadata = artifact.metadata
        try:
            version = path_segment(artifact.version)
            name = path_segment(artifact.name)
        except ValueError as exc:
            raise MetadataError(
                f"{metadata.source}: artifact {artifact.name!r}@{artifact.version}: {exc}",
                source=metadata.source,
            ) from None
        twins = [
            other
            for other in metadata.artifacts
            if other.version == artifact.version and other.name == artifact.name
        ]
        if len(twins) > 1:
            # Same version and name but other properties: keep each variant in its own folder.
            name = f"{name}-{twins.index(artifact)}"
        return self.cache_directory / "artifacts" / metadata.mrl.path / version / name

    # -- resolve -----------------------------------------------------------------------------

    def resolve(
        self,
        mrl: MRL,
        version: str | VersionRange | None = None,
        filter: Mapping[str, str] | None = None,
    ) -> Artifact | None:
        """The highest version of ``mrl`` inside ``version`` whose properties contain ``filter``.

        ``version`` is a version range (``"[1.0,2.0)"``), a bare version (an exact match) or
        None for any version. On equal versions the first artifact in file order wins. An
        artifact without a version matches only when ``version`` is None, and loses to any
        versioned one.

        :raises InvalidVersionError: when ``version`` does not parse.
        """
        range_ = version if isinstance(version, VersionRange) else VersionRange.parse(version)
        metadata = self.locate(mrl)
        if metadata is None:
            return None
        wanted = dict(filter or {})
        best: Artifact | None = None
        best_version: Version | None = None
        for artifact in metadata.artifacts:
            candidate = artifact.parsed_version
            if candidate is None:
                if version is not None:
                    continue
            elif not range_.contains(candidate):
                continue
            if not artifact.has_properties(wanted):
                continue
            if best is None or (
                candidate is not None and (best_version is None or candidate > best_version)
            ):
                best, best_version = artifact, candidate
        return best

    # -- prepare -----------------------------------------------------------------------------

    def is_prepared(self, artifact: Artifact) -> bool:
        """True when the artifact's resource directory is complete for its current items.

        Reads the first bytes of the directory's manifest, nothing else.
        """
        recorded = read_sources_digest(self.get_resource_directory(artifact))
        return recorded is not None and recorded == self._sources_digest(artifact)

    def _fingerprints(self, artifact: Artifact) -> dict[str, dict[str, Any]]:
        return {key: self._item_fingerprint(item) for key, item in artifact.files.items()}

    #: Whether an item's fingerprint depends only on its metadata (so it can be remembered).
    _stable_fingerprints = True

    def _sources_digest(self, artifact: Artifact) -> str:
        if not self._stable_fingerprints:
            return sources_digest(self._fingerprints(artifact))
        memo_key = f"sources_digest:{type(self).__name__}:{self.base_uri}"
        digest = artifact.memo.get(memo_key)
        if digest is None:
            digest = artifact.memo[memo_key] = sources_digest(self._fingerprints(artifact))
        return str(digest)

    def prepare(self, artifact: Artifact, progress: ProgressOption = None) -> None:
        """Fetch, verify and install an artifact's items into its resource directory.

        A prepared artifact costs one small read of its manifest and nothing else: no lock, no
        write, so a prepared cache on a read-only mount works. Otherwise the artifact's lock is
        taken (another process preparing it is waited for, then its result reused), and every
        item is read once, hashed on the way, and installed into a work directory beside the
        target, which is renamed into place only when everything verified.

        :param progress: None for a bar when stderr is a terminal, False for none, or a
            callback ``progress(bytes_done, bytes_total)``.
        :raises ChecksumMismatchError: when an item's bytes do not match its declared hash.
        :raises DownloadError: when an item cannot be read (``OfflineError`` in offline mode).
        :raises ExtractionError: when an archive is corrupt, unsupported or unsafe.
        :raises InstallError: when the cache cannot be written (full disk, permissions), naming
            the path; temporary files are removed.
        """
        if self.is_prepared(artifact):
            return
        self._prepare_locked(artifact, progress, force=False)

    def _prepare_locked(self, artifact: Artifact, progress: ProgressOption, *, force: bool) -> None:
        target = self.get_resource_directory(artifact)
        try:
            ensure_cachedir_tag(self._cache_root)
            with work_lock(self._cache_root, str(target), timeout=self.lock_timeout):
                if not force and self.is_prepared(artifact):
                    return  # another process finished it while this one waited
                remove_abandoned(target)
                self._prepare_with_retries(artifact, target, progress, force=force)
        except OSError as exc:
            raise install_error(exc, target) from exc

    def _prepare_with_retries(
        self, artifact: Artifact, target: Path, progress: ProgressOption, *, force: bool
    ) -> None:
        sizes = [item.size for item in artifact.files.values()]
        description = f"{artifact.metadata.mrl.artifact_id} {artifact.version or ''}".strip()
        callback = progress_for(progress, description, known_total(sizes))
        counter = None if callback is None else Progress(callback, sizes)
        try:
            for attempt in (1, 2):
                try:
                    self._prepare_once(artifact, target, counter, force=force)
                    return
                except SourceChangedError as exc:
                    if attempt == 2:
                        raise
                    logger.warning("%s; preparing %s again", exc, target)
        finally:
            if counter is not None:
                counter.close()

    def _prepare_once(
        self, artifact: Artifact, target: Path, counter: Progress | None, *, force: bool
    ) -> None:
        work: Path | None = None
        partials: list[Partial] = []
        try:
            work = work_directory(target)
            items = self._install_items(artifact, work, counter, partials)
            sources = self._fingerprints(artifact)
            manifest = Manifest(
                sources_digest=sources_digest(sources),
                repository=self.base_uri,
                mrl=str(artifact.metadata.mrl),
                version=artifact.version,
                name=artifact.name,
                sources=sources,
            )
            write_manifest(work, manifest, items)
            publish(work, target, accept_existing=lambda: not force and self.is_prepared(artifact))
            logger.info("Prepared %s %s in %s", artifact.metadata.mrl, artifact.version, target)
            if partials:
                self._partials().discard_in_background(partials)
        finally:
            if work is not None:
                remove_tree(work)

    def remove(self, artifact: Artifact) -> bool:
        """Remove a prepared artifact from the cache (atomically); False if it was not there."""
        target = self.get_resource_directory(artifact)
        if not target.is_relative_to(self._cache_root):
            raise RepositoryError(f"{self!r} serves {target} in place; it is not in the cache")
        try:
            with work_lock(self._cache_root, str(target), timeout=self.lock_timeout):
                return remove_directory(target)
        except OSError as exc:
            raise install_error(exc, target) from exc

    def _install_items(
        self,
        artifact: Artifact,
        work: Path,
        counter: Progress | None,
        partials: list[Partial],
    ) -> list[InstalledItem]:
        """Install every item into ``work``: in parallel over pooled connections when remote,
        many small ones first over pipelined connections."""
        items = list(artifact.files.values())
        installed = self._install_pipelined(items, work, counter)
        rest = [item for item in items if item.key not in installed]
        workers = min(self.max_workers, len(rest))

        def install(item: Item) -> InstalledItem:
            return self._install_one(item, work, counter, partials)

        if workers <= 1:
            installed.update((item.key, install(item)) for item in rest)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="repository-item") as pool:
                futures = [pool.submit(install, item) for item in rest]
                wait(futures)
            installed.update(
                (item.key, future.result()) for item, future in zip(rest, futures, strict=True)
            )
        return [installed[item.key] for item in items]

    def _install_pipelined(
        self, items: list[Item], work: Path, counter: Progress | None
    ) -> dict[str, InstalledItem]:
        """Fetch and install the small items (when there are at least :attr:`pipelining_from`
        of them) over pipelined HTTP/1.1 connections; those it could not fetch are left out."""
        small = [
            (item, url)
            for item in items
            if self._is_small(item) and (url := self._item_url(item)) is not None
        ]
        if len(small) < self.pipelining_from:
            return {}
        from repository.transfer import redact_url

        on_bytes = None if counter is None else counter.advance
        installed: dict[str, InstalledItem] = {}
        answers = self.http_transport.fetch_pipelined(
            [url for _, url in small], max_body=self.small_item_size
        )
        with contextlib.closing(answers):
            for index, body in answers:
                item, url = small[index]
                installed[item.key] = install_body(
                    body,
                    item,
                    work,
                    source=redact_url(url),
                    limits=self.extraction_limits,
                    on_bytes=on_bytes,
                )
        if len(installed) < len(small):
            logger.debug("%d small items left to single requests", len(small) - len(installed))
        return installed

    def _install_one(
        self, item: Item, work: Path, counter: Progress | None, partials: list[Partial]
    ) -> InstalledItem:
        url = self._item_url(item)
        on_bytes = None if counter is None else counter.advance
        if url is None:
            with self._open_item(item) as stream:
                return install_item(
                    stream,
                    item,
                    work,
                    source=item.uri or item.key,
                    limits=self.extraction_limits,
                    local_file=self._local_item_file(item),
                    on_bytes=on_bytes,
                )
        return self._download_item(item, url, work, counter, partials)

    def _download_item(
        self, item: Item, url: str, work: Path, counter: Progress | None, partials: list[Partial]
    ) -> InstalledItem:
        """Install an item from a URL through a resumable partial download.

        Items declared smaller than :attr:`small_item_size` resume from memory, within the
        process only: for them, a partial file's bookkeeping costs more than a new transfer.
        """
        from repository.transfer import MemoryPartial, Partial, ResumingStream, redact_url

        store = self._partials()
        partial: Partial | MemoryPartial
        if self._is_small(item):
            partial = MemoryPartial()
        else:
            key = hashlib.sha256(f"{url}|{sorted(item.hashes.items())}".encode()).hexdigest()[:32]
            partial = store.claim(key)
        on_size = None if counter is None or (item.size or 0) > 0 else counter.learn_size
        shown = redact_url(url)
        # A whole file is installed from its partial file; an extracted stream's partial file
        # is read again only to resume after a crash, so it stays out of the page cache.
        whole_file = wants_whole_file(item)
        stream = ResumingStream(
            self.http_transport, url, partial, on_size=on_size, cache_partial=whole_file
        )
        try:
            with stream:
                on_bytes = None if counter is None else counter.advance
                if whole_file and isinstance(partial, Partial):
                    with source_reader(stream, item, on_bytes) as reader:
                        reader.consume(stream.chunks())
                        digests = reader.hexdigests()
                    stream.close()
                    installed = install_file(
                        partial.data,
                        digests,
                        item,
                        work,
                        source=shown,
                        limits=self.extraction_limits,
                        move=True,
                    )
                else:

                    def install(source: Readable) -> InstalledItem:
                        return install_item(
                            source,
                            item,
                            work,
                            source=shown,
                            limits=self.extraction_limits,
                            on_bytes=on_bytes,
                        )

                    if isinstance(partial, Partial):  # large: receive while extracting
                        installed = consume_overlapped(stream.chunks(), install)
                    else:
                        installed = install(stream)
        except ChecksumMismatchError:
            store.discard(partial)  # deleted for safety; a resumed download starts over
            if stream.resumed:
                raise SourceChangedError(f"{shown} did not verify after resuming") from None
            raise
        except (ExtractionError, InstallError, OSError):
            store.discard(partial)  # bad content or no room: nothing worth resuming
            raise
        except BaseException:
            store.release(partial)
            raise
        if isinstance(partial, Partial):
            partials.append(partial)  # removed once the artifact is published
        return installed

    def _is_small(self, item: Item) -> bool:
        """Whether an item is declared smaller than :attr:`small_item_size`."""
        return item.size is not None and 0 <= item.size < self.small_item_size

    def _item_url(self, item: Item) -> str | None:
        """The http(s) URL of an item, or None when ``_open_item`` reads it."""
        uri = item.uri or ""
        return uri if uri.lower().startswith(("http://", "https://")) else None

    @property
    def http_transport(self) -> HttpTransport:
        """The HTTP client of this repository (created on first use)."""
        if self._http is None:
            from repository.transfer import HttpTransport

            self._http = HttpTransport()
        return self._http

    def _partials(self) -> PartialDownloads:
        from repository.transfer import PartialDownloads

        return PartialDownloads(self._cache_root / ".tmp" / "downloads")

    def verify(self, artifact: Artifact, *, repair: bool = False) -> VerifyReport:
        """Re-hash a prepared artifact against its manifest: missing, changed and extra files.

        :param repair: prepare the artifact again when the check fails (the damaged directory
            is replaced atomically).
        """
        from repository.verify import verify_directory

        directory = self.get_resource_directory(artifact)
        report = verify_directory(directory)
        if not report.ok and repair:
            logger.warning("Re-preparing %s: %s", artifact.metadata.mrl, report)
            self._prepare_locked(artifact, False, force=True)
        return report

    # -- reading prepared files --------------------------------------------------------------

    def get_file(self, item: Item, path: str = "") -> Path:
        """The path of an item, or of ``path`` inside a directory item, once prepared.

        :raises ValueError: when ``path`` would leave the item's directory.
        """
        directory = self.get_resource_directory(item.artifact)
        name = item.effective_name
        if item.effective_type != "dir":
            return directory / name
        base = directory / name if name else directory
        return base / check_relative_name(path.strip("/")) if path.strip("/") else base

    def open_stream(self, item: Item, path: str = "") -> BinaryIO:
        """Open a prepared file of an item for reading.

        :raises RepositoryError: when the file does not exist (the artifact is not prepared).
        """
        file = self.get_file(item, path)
        try:
            return file.open("rb")
        except OSError as exc:
            raise RepositoryError(f"Cannot open {file}: {exc.strerror}") from exc

    def list_directory(self, item: Item, path: str = "") -> list[str]:
        """The sorted names in a prepared directory of an item (the manifest excluded)."""
        directory = self.get_file(item, path)
        try:
            names = os.listdir(directory)
        except OSError as exc:
            raise RepositoryError(f"Cannot list {directory}: {exc.strerror}") from exc
        return sorted(name for name in names if name != MANIFEST_NAME)
