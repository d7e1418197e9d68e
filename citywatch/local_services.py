"""Private Mosquitto and InfluxDB servers on free loopback ports.

Used by the test suite (each test session gets its own isolated servers) and by
``citywatch run``/``demo`` when no broker or database is configured. Each server lives in
a temporary directory that holds its config and data, and can be stopped and started
again on the same port and data (for fault tests: a database that goes away and comes back).
"""

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A local server could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(binary: str, package: str, fallback: str) -> str:
    """The path of a server binary (``/usr/sbin`` is often not on a user's PATH)."""
    found = shutil.which(binary)
    if found:
        return found
    if Path(fallback).exists():
        return fallback
    raise ServiceError(
        f"{binary} not found; install it with `apt-get install -y {package}` "
        "(`make setup` does this)"
    )


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _LocalServer(ABC):
    """A child process with a temporary home; subclasses say how to configure and probe it."""

    name = "server"

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        # Absolute: the server runs in ``root`` (cwd), so a relative config path given
        # to it would be resolved against itself.
        self.root = (root or Path(tempfile.mkdtemp(prefix=f"citywatch-{self.name}-"))).resolve()
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = self.root / f"{self.name}.log"

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line that starts the server (writing its config first)."""

    @abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers."""

    def _env(self) -> dict[str, str] | None:
        """The server's environment (None: this process's own)."""
        return None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (again) on its port and data; return once it answers."""
        if self.running:
            return
        with self._log_path.open("ab") as out:
            # Its own process group: a terminal's Ctrl-C (or a group-wide SIGTERM) reaches
            # only citywatch, which drains into the server before it stops it.
            self._proc = subprocess.Popen(
                self._command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                process_group=0,
                env=self._env(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self._proc.returncode}: {self.log_tail()}"
                )
            if self._ready():
                log.info("%s listening on 127.0.0.1:%d (%s)", self.name, self.port, self.root)
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not answer within {timeout} s: {self.log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill``); its data stays."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            if kill:
                self._proc.kill()
            else:
                self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalMosquitto(_LocalServer):
    """A private Mosquitto 2 broker: anonymous, loopback only, persistent sessions on disk."""

    name = "mosquitto"

    def __init__(self, root: Path | None = None, *, extra_config: str = "") -> None:
        super().__init__(root)
        self.extra_config = extra_config

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        conf = self.root / "mosquitto.conf"
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            "autosave_interval 1\n"
            # Room for a large backlog of a stopped persistent subscriber (benchmarks).
            "max_queued_messages 2000000\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 0\n"
            "log_type error\nlog_type warning\n"
            # Started as root, Mosquitto drops to the `mosquitto` user, which cannot read
            # our private temporary directory; keep the invoking user instead.
            f"{'user root' if os.geteuid() == 0 else ''}\n"
            f"{self.extra_config}\n"
        )
        return [find_binary("mosquitto", "mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)]

    def _ready(self) -> bool:
        return _port_open(self.port)


class LocalInfluxd(_LocalServer):
    """A private InfluxDB 1.x server serving the v1 HTTP API (``/write``, ``/query``, ``/ping``)."""

    name = "influxd"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        conf = self.root / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            "[meta]\n"
            f'  dir = "{self.root}/meta"\n'
            "  logging-enabled = false\n"
            "[data]\n"
            f'  dir = "{self.root}/data"\n'
            f'  wal-dir = "{self.root}/wal"\n'
            "  query-log-enabled = false\n"
            '  index-version = "inmem"\n'
            "[monitor]\n"
            "  store-enabled = false\n"
            "[http]\n"
            f'  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n"
            "  max-body-size = 0\n"
            "[continuous_queries]\n"
            "  enabled = false\n"
        )
        return [find_binary("influxd", "influxdb", "/usr/bin/influxd"), "run", "-config", str(conf)]

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
"""The server itself: ``/usr/sbin/rabbitmq-server`` is a wrapper that switches to the
``rabbitmq`` user, which cannot write a root-owned temporary folder."""
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class LocalRabbitMQ(_LocalServer):
    """A private RabbitMQ node with the MQTT plugin, beside the machine's own broker.

    Its own node name, AMQP, MQTT and distribution ports (free loopback ports), data and
    log folders, and ``HOME`` (so its own Erlang cookie) under ``root``; the plugin is
    enabled through its own enabled-plugins file, so the machine's broker is untouched.
    Anonymous MQTT maps to ``guest``; ``loopback_users = none`` lets guest in over AMQP.
    :meth:`stop` asks the node to stop (``rabbitmqctl stop``), ``stop(kill=True)`` sends
    SIGKILL to its whole process group (the start script, ``beam.smp`` and its helpers):
    the node's data stays, and :meth:`start` brings it back on the same ports.
    """

    name = "rabbitmq"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root)
        self.mqtt_port = free_port()
        self.dist_port = free_port()
        self.node = f"cw{os.getpid()}x{self.port}@localhost"

    @property
    def url(self) -> str:
        """The AMQP URL of the default vhost (``guest``)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.root),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq"),  # the server adds .conf
            RABBITMQ_PID_FILE=str(self.root / "rabbitmq.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _command(self) -> list[str]:
        if not Path(RABBITMQ_SERVER).exists():
            raise ServiceError(
                "RabbitMQ not found; install it with `apt-get install -y rabbitmq-server` "
                "(`make setup` does this)"
            )
        (self.root / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        return [RABBITMQ_SERVER]

    def _ready(self) -> bool:
        # The AMQP listener opens last, once every plugin (MQTT included) has booted.
        return _port_open(self.mqtt_port) and _port_open(self.port)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl`` against this node; its output."""
        done = subprocess.run(
            [RABBITMQCTL, "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ServiceError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, timeout: float = 90.0) -> None:
        super().start(timeout)

    def stop(self, *, kill: bool = False) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and not kill:
            try:
                self.ctl("stop", timeout=60)
            except (ServiceError, subprocess.TimeoutExpired) as exc:
                log.warning("rabbitmqctl stop failed (%s); killing the node", exc)
        # The start script is the group leader: this reaches beam.smp and its helpers
        # (a graceful stop has ended them already).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._proc = None
        # beam.smp is the script's child: its sockets close once the kernel has torn it
        # down, a moment after the script itself is reaped.
        deadline = time.monotonic() + 15
        while _port_open(self.port) or _port_open(self.mqtt_port) or _port_open(self.dist_port):
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} still listens after it was stopped")
            time.sleep(0.05)
