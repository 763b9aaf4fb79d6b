"""A real nginx (Debian's ``/usr/sbin/nginx``) serving a directory on 127.0.0.1.

Used for "static file server" behaviour: ETag, Last-Modified, Range, keep-alive, exactly as
a production mirror would answer. The access log is written tab-separated so tests can check
what the server saw (see :meth:`NginxServer.requests`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["NGINX_BINARY", "LoggedRequest", "NginxError", "NginxServer", "nginx_available"]

NGINX_BINARY = Path("/usr/sbin/nginx")

# Field order of the access log; every value is escaped by nginx (control characters
# become \xHH), so a tab never appears inside a field. Missing values are logged as "-".
_LOG_FORMAT_FIELDS = (
    "$msec",
    "$connection",
    "$request_method",
    "$uri",
    "$status",
    "$http_range",
    "$body_bytes_sent",
    "$http_authorization",
    "$request_uri",
)
_ADDRESS_IN_USE = "Address already in use"


def nginx_available() -> bool:
    """Whether Debian's nginx binary is installed and executable."""
    return NGINX_BINARY.is_file() and os.access(NGINX_BINARY, os.X_OK)


class NginxError(RuntimeError):
    """nginx failed to start or to stop."""


@dataclass(frozen=True)
class LoggedRequest:
    """One line of nginx's access log."""

    method: str
    uri: str  # $uri: decoded, normalised path without the query string
    status: int
    range: str | None  # the request's Range header, None when absent
    bytes_sent: int  # $body_bytes_sent: body bytes only, headers excluded
    authorization: str | None  # the request's Authorization header, None when absent
    request_uri: str = ""  # $request_uri: the raw request target, query string included
    connection: int = 0  # $connection: serial number of the TCP connection (keep-alive checks)
    time: float = 0.0  # $msec: wall-clock time the log line was written


def _dash_none(value: str) -> str | None:
    return None if value == "-" else value


def _parse_log_line(line: str) -> LoggedRequest:
    fields = line.rstrip("\n").split("\t")
    if len(fields) != len(_LOG_FORMAT_FIELDS):
        raise ValueError(f"unexpected nginx access log line: {line!r}")
    msec, connection, method, uri, status, range_, sent, authorization, request_uri = fields
    return LoggedRequest(
        method=method,
        uri=uri,
        status=int(status),
        range=_dash_none(range_),
        bytes_sent=int(sent),
        authorization=_dash_none(authorization),
        request_uri=request_uri,
        connection=int(connection),
        time=float(msec),
    )


def _quote(value: str | Path) -> str:
    text = str(value)
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"path not usable in an nginx config: {text!r}")
    return f'"{text}"'


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class NginxServer:
    """Debian's nginx serving ``root`` on a free port of 127.0.0.1.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). Configuration, logs, pid
    file and temp folders live in ``workdir`` (a fresh temporary folder by default, removed on
    stop; a given ``workdir`` is left in place so its logs can be inspected).
    """

    START_TIMEOUT = 10.0
    STOP_TIMEOUT = 5.0
    PORT_ATTEMPTS = 5

    def __init__(
        self,
        root: str | Path,
        *,
        extra_locations: str = "",
        workdir: str | Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(self.root)
        self.extra_locations = extra_locations
        self.host = host
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- paths and URLs
    @property
    def port(self) -> int:
        if self._port is None:
            raise NginxError("nginx is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (relative to the served root)."""
        return self.base_url + path.lstrip("/")

    def _dir(self) -> Path:
        if self.workdir is None:
            raise NginxError("nginx is not running")
        return self.workdir

    @property
    def access_log(self) -> Path:
        return self._dir() / "access.log"

    @property
    def error_log(self) -> Path:
        return self._dir() / "error.log"

    @property
    def config_file(self) -> Path:
        return self._dir() / "nginx.conf"

    # ----------------------------------------------------------------- configuration
    def _config(self, port: int) -> str:
        d = self._dir()
        user = "user root;\n" if os.geteuid() == 0 else ""
        log_format = "\\t".join(_LOG_FORMAT_FIELDS)
        temp_paths = "\n".join(
            f"    {kind}_temp_path {_quote(d / 'temp' / kind)};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""\
daemon off;
master_process on;
worker_processes 1;
{user}error_log {_quote(d / "error.log")} notice;
pid {_quote(d / "nginx.pid")};
worker_shutdown_timeout 2s;

events {{
    worker_connections 256;
}}

http {{
{temp_paths}
    default_type application/octet-stream;
    log_format repository_tests '{log_format}';
    access_log {_quote(d / "access.log")} repository_tests;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 30s;
    server_tokens off;

    server {{
        listen {self.host}:{port};
        server_name localhost;
        root {_quote(self.root)};
        autoindex off;
        etag on;

        location / {{
        }}
{self.extra_locations}
    }}
}}
"""

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> NginxServer:
        if self._process is not None:
            return self
        if not nginx_available():
            raise NginxError(f"{NGINX_BINARY} is not installed (apt-get install nginx-light)")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="nginx-"))
        d = self._dir()
        d.mkdir(parents=True, exist_ok=True)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / "temp" / kind).mkdir(parents=True, exist_ok=True)
        failure = ""
        for _attempt in range(self.PORT_ATTEMPTS):
            port = _free_port(self.host)
            failure = self._try_start(port)
            if not failure:
                self._port = port
                return self
            if _ADDRESS_IN_USE not in failure:
                break
        self._cleanup_workdir()
        raise NginxError(f"nginx did not start:\n{failure}")

    def _try_start(self, port: int) -> str:
        """Start nginx on ``port``; return "" on success or a description of the failure."""
        d = self._dir()
        self.config_file.write_text(self._config(port))
        self.access_log.write_text("")
        self.error_log.write_text("")
        pid_file = d / "nginx.pid"
        pid_file.unlink(missing_ok=True)
        command = [str(NGINX_BINARY), "-p", str(d), "-c", str(self.config_file)]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # If the test process dies without cleaning up, nginx gets SIGTERM instead of
            # living on as an orphan that holds the port.
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        stderr_path = d / "stderr.log"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            code = process.poll()
            if code is not None:
                return f"nginx exited with status {code}\n{self._diagnostics()}"
            # nginx writes its pid file only once its listening socket is bound: before that,
            # whatever accepts a connection on the port is not this nginx.
            if _read_pid(pid_file) == process.pid:
                try:
                    with socket.create_connection((self.host, port), timeout=0.5):
                        break
                except OSError:
                    pass
            elif _ADDRESS_IN_USE in self._diagnostics():
                # nginx would retry bind() for 2.5 s; another port is quicker.
                self._kill(process)
                return self._diagnostics()
            if time.monotonic() > deadline:
                self._kill(process)
                return (
                    f"nginx did not accept connections on {self.host}:{port} within "
                    f"{self.START_TIMEOUT:.0f} s\n{self._diagnostics()}"
                )
            time.sleep(0.02)
        self._process = process
        return ""

    def _diagnostics(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self._dir() / name
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path} ---\n{text}")
        return "\n".join(parts) or "(no output from nginx)"

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        # nginx runs in its own session, so its process group is the master plus its workers
        # (the master is not reaped yet, so the group id cannot have been reused).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """Graceful shutdown (SIGQUIT); SIGKILL to the whole process group after a timeout."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGQUIT)
                try:
                    # The master reaps its workers before it exits.
                    process.wait(self.STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._kill(process)
        finally:
            self._port = None
            self._cleanup_workdir()

    def _cleanup_workdir(self) -> None:
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- access log
    def _wait_quiet(self, min_count: int, quiet: float, timeout: float) -> list[LoggedRequest]:
        deadline = time.monotonic() + timeout
        last_size = -1
        stable_since = time.monotonic()
        while True:
            text = self.access_log.read_text(errors="replace")
            now = time.monotonic()
            if len(text) != last_size:
                last_size = len(text)
                stable_since = now
            # Only complete lines: nginx writes one line per request with one write().
            lines = [line for line in text.splitlines(keepends=True) if line.endswith("\n")]
            if len(lines) >= min_count and now - stable_since >= quiet:
                return [_parse_log_line(line) for line in lines]
            if now > deadline:
                if len(lines) < min_count:
                    raise AssertionError(
                        f"nginx logged {len(lines)} requests, expected at least {min_count}"
                    )
                return [_parse_log_line(line) for line in lines]
            time.sleep(0.01)

    def requests(
        self, *, min_count: int = 0, quiet: float = 0.1, timeout: float = 5.0
    ) -> list[LoggedRequest]:
        """The access log, parsed, oldest first.

        nginx writes a line when a response has ended, which can be a moment after the client
        saw its last byte; so this waits until the log has not changed for ``quiet`` seconds
        and holds at least ``min_count`` lines (AssertionError after ``timeout``).
        """
        return self._wait_quiet(min_count, quiet, timeout)

    def clear_log(self, *, quiet: float = 0.1) -> None:
        """Empty the access log (after letting pending lines arrive). nginx appends, so
        later requests are logged from the start of the file."""
        self._wait_quiet(0, quiet, 5.0)
        with self.access_log.open("r+b") as log:
            log.truncate(0)
