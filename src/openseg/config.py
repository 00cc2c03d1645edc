"""Configuration: environment variables with the same names as the CLI flags (see contract.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from openseg.lake_files import Lake, is_remote, open_lake


@dataclass(frozen=True)
class Settings:
    """Where openseg keeps its state and which engines it uses.

    Every field maps to an ``OPENSEG_*`` environment variable; CLI flags override the environment.
    """

    home: Path
    database_url: str
    #: The lake's local directory (unused when :attr:`lake_uri` names an object store).
    lake: Path
    engine: str = "duckdb"
    spark_master: str = "local[2]"
    #: Spark settings over openseg's own session settings (``OPENSEG_SPARK_CONF``), in the order given.
    spark_conf: tuple[tuple[str, str], ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    build_memory_limit: str | None = "2GB"
    job_memory_limit: str | None = None
    membership_snapshots: int = 2
    worker_nice: int = 10
    #: Where ``openseg serve`` runs its worker: ``process`` (a child ``openseg worker``) or ``thread`` (in the API's process).
    worker_mode: str = "process"
    #: Whether the worker runs this host's streamer beside its lanes (off where ``openseg streamer`` runs alone).
    streamer: bool = True
    #: At least this long between two profile builds that streamed batches request (the overlay shows streamed
    #: records at once; a build only folds them into the store).
    stream_build_seconds: float = 15.0
    #: When streaming's durable files are fsync'd (``OPENSEG_STREAM_FSYNC``): ``checkpoint`` (an acknowledged
    #: message survives ``kill -9`` of every process; SQLite syncs the log at its checkpoints) or ``commit``
    #: (every group commit is fsync'd: it survives a power cut too, and waits on the disk).
    stream_fsync: str = "checkpoint"
    query_memory_limit: str = "1GB"
    query_threads: int = 1
    query_timeout: float = 120.0
    #: Processes of their own for each of the API's heavy lanes, edge calls and profile lookups
    #: (``openseg serve``; 0: threads of the API's process, as tests drive the app).
    api_processes: int = 2
    #: An object store lake's URI (``OPENSEG_LAKE=s3://bucket/prefix``); empty for a local lake at :attr:`lake`.
    lake_uri: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); keyword overrides win when not None."""
        env = dict(os.environ if env is None else env)
        home_value = overrides.get("home") or env.get("OPENSEG_HOME") or ".openseg"
        home = local_path("OPENSEG_HOME", str(home_value)).resolve()
        database_url = str(
            overrides.get("database_url")
            or env.get("OPENSEG_DATABASE_URL")
            or f"sqlite:///{home / 'openseg.db'}"
        )
        lake_value = str(overrides.get("lake") or env.get("OPENSEG_LAKE") or home / "lake")
        lake_uri = lake_value if is_remote(lake_value) else ""
        lake = home / "lake" if lake_uri else local_path("OPENSEG_LAKE", lake_value)
        settings = cls(
            home=home,
            database_url=database_url,
            lake=lake.resolve(),
            engine=str(overrides.get("engine") or env.get("OPENSEG_ENGINE") or "duckdb"),
            spark_master=str(
                overrides.get("spark_master") or env.get("OPENSEG_SPARK_MASTER") or "local[2]"
            ),
            spark_conf=parse_spark_conf(env.get("OPENSEG_SPARK_CONF") or ""),
            host=str(overrides.get("host") or env.get("OPENSEG_HOST") or "127.0.0.1"),
            port=int(str(overrides.get("port") or env.get("OPENSEG_PORT") or 8080)),
            build_memory_limit=str(env.get("OPENSEG_BUILD_MEMORY_LIMIT") or "2GB"),
            job_memory_limit=env.get("OPENSEG_JOB_MEMORY_LIMIT") or None,
            membership_snapshots=int(env.get("OPENSEG_MEMBERSHIP_SNAPSHOTS") or 2),
            worker_nice=int(env.get("OPENSEG_WORKER_NICE") or 10),
            worker_mode=str(env.get("OPENSEG_WORKER_MODE") or "process").strip().lower(),
            streamer=_switch("OPENSEG_STREAMER", env.get("OPENSEG_STREAMER") or "on"),
            stream_build_seconds=float(env.get("OPENSEG_STREAM_BUILD_SECONDS") or 15),
            stream_fsync=str(env.get("OPENSEG_STREAM_FSYNC") or "checkpoint").strip().lower(),
            query_memory_limit=str(env.get("OPENSEG_QUERY_MEMORY_LIMIT") or "1GB"),
            query_threads=int(env.get("OPENSEG_QUERY_THREADS") or 1),
            query_timeout=float(env.get("OPENSEG_QUERY_TIMEOUT") or 120),
            api_processes=int(env.get("OPENSEG_API_PROCESSES") or 2),
            lake_uri=lake_uri,
        )
        if settings.membership_snapshots < 1:
            raise ValueError("OPENSEG_MEMBERSHIP_SNAPSHOTS must be at least 1 (the current membership)")
        if not 0 <= settings.worker_nice <= 19:
            raise ValueError("OPENSEG_WORKER_NICE must be between 0 and 19")
        if settings.stream_build_seconds < 0:
            raise ValueError("OPENSEG_STREAM_BUILD_SECONDS must be 0 or more")
        if settings.stream_fsync not in STREAM_FSYNC:
            raise ValueError(f"OPENSEG_STREAM_FSYNC must be 'checkpoint' or 'commit', not {settings.stream_fsync!r}")
        if settings.worker_mode not in WORKER_MODES:
            raise ValueError(f"OPENSEG_WORKER_MODE must be 'process' or 'thread', not {settings.worker_mode!r}")
        if settings.query_threads < 1 or settings.query_timeout <= 0:
            raise ValueError("OPENSEG_QUERY_THREADS must be at least 1 and OPENSEG_QUERY_TIMEOUT above 0")
        if settings.api_processes < 0:
            raise ValueError("OPENSEG_API_PROCESSES must be 0 (threads) or more")
        if settings.engine not in ("duckdb", "spark"):
            raise ValueError(f"OPENSEG_ENGINE must be 'duckdb' or 'spark', not {settings.engine!r}")
        if lake_uri and settings.engine == "spark":
            raise ValueError("OPENSEG_LAKE: an s3:// lake is read by the DuckDB engine only so far; with "
                             "OPENSEG_ENGINE=spark use a file system every host mounts (docs/scale-out.md)")
        if lake_uri:
            open_lake(lake_uri)  # a bad URI (no bucket, an unknown option) is refused at start-up
        return settings

    def to_env(self) -> dict[str, str]:
        """These settings as the environment that :meth:`from_env` reads back into equal settings: what
        ``openseg serve`` gives its worker process, so that the flags it was started with (``--home``) hold
        there too."""
        return {
            "OPENSEG_HOME": str(self.home),
            "OPENSEG_DATABASE_URL": self.database_url,
            "OPENSEG_LAKE": self.lake_uri or str(self.lake),
            "OPENSEG_ENGINE": self.engine,
            "OPENSEG_SPARK_MASTER": self.spark_master,
            "OPENSEG_SPARK_CONF": ";".join(f"{key}={value}" for key, value in self.spark_conf),
            "OPENSEG_HOST": self.host,
            "OPENSEG_PORT": str(self.port),
            "OPENSEG_BUILD_MEMORY_LIMIT": self.build_memory_limit or "",
            "OPENSEG_JOB_MEMORY_LIMIT": self.job_memory_limit or "",
            "OPENSEG_MEMBERSHIP_SNAPSHOTS": str(self.membership_snapshots),
            "OPENSEG_WORKER_NICE": str(self.worker_nice),
            "OPENSEG_WORKER_MODE": self.worker_mode,
            "OPENSEG_STREAMER": "on" if self.streamer else "off",
            "OPENSEG_STREAM_BUILD_SECONDS": repr(self.stream_build_seconds),
            "OPENSEG_STREAM_FSYNC": self.stream_fsync,
            "OPENSEG_QUERY_MEMORY_LIMIT": self.query_memory_limit,
            "OPENSEG_QUERY_THREADS": str(self.query_threads),
            "OPENSEG_QUERY_TIMEOUT": repr(self.query_timeout),
            "OPENSEG_API_PROCESSES": str(self.api_processes),
        }

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def stream_fsync_each_commit(self) -> bool:
        """Whether streaming's SQLite files and offsets are fsync'd at each commit (``OPENSEG_STREAM_FSYNC=commit``)."""
        return self.stream_fsync == "commit"

    @property
    def data_lake(self) -> Lake:
        """The lake, local or on an object store (:mod:`openseg.lake_files`)."""
        return open_lake(self.lake_uri or str(self.lake))

    @property
    def staging(self) -> Path:
        """Uploaded files of batches that are not complete yet."""
        return self.home / "staging"

    @property
    def profiles_dir(self) -> Path:
        """Merged profile stores, one directory per sandbox and merge policy."""
        return self.home / "profiles"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.staging, self.profiles_dir, *(() if self.lake_uri else (self.lake,))):
            path.mkdir(parents=True, exist_ok=True)


#: ``OPENSEG_WORKER_MODE``: where ``openseg serve`` runs its worker.
WORKER_MODES = ("process", "thread")
#: ``OPENSEG_STREAM_FSYNC``: when streaming's durable files reach the disk.
STREAM_FSYNC = ("checkpoint", "commit")


def _switch(name: str, value: str) -> bool:
    """An on/off setting."""
    lowered = value.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} must be 'on' or 'off', not {value!r}")


def local_path(name: str, value: str) -> Path:
    """A data path setting as a local path: a path, or a ``file://`` URI (``file:///data/lake``, as Spark and
    PyArrow spell a shared file system's path; ``%20`` and the like decoded).

    Raises:
        ValueError: A URI of another scheme (an ``s3://`` lake is read by :meth:`Settings.from_env` itself).
    """
    scheme, sep, rest = value.partition("://")
    if not sep or "/" in scheme:
        return Path(value).expanduser()
    if scheme.lower() != "file":
        raise ValueError(f"{name}: {scheme}:// URIs are not supported yet; use a path or a file:// URI of a file system "
                         "every host mounts (docs/scale-out.md)")
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost"):
        raise ValueError(f"{name}: a file:// URI names no host (file:///path), not {host!r}")
    return Path(unquote(slash + path))


def parse_spark_conf(text: str) -> tuple[tuple[str, str], ...]:
    """``OPENSEG_SPARK_CONF``: ``key=value`` pairs separated by ``;`` (values may hold ``,``, spaces and ``=``),
    e.g. ``spark.executor.memory=4g; spark.sql.shuffle.partitions=200``.

    Raises:
        ValueError: A pair without ``=`` or whose key is not a ``spark.`` setting.
    """
    pairs = []
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.startswith("spark."):
            raise ValueError(f"OPENSEG_SPARK_CONF: {item.strip()!r} is not a 'spark.name=value' setting")
        pairs.append((key, value.strip()))
    return tuple(pairs)


#: The configuration table of README.md, checked by tests/test_docs.py.
ENVIRONMENT = (
    ("OPENSEG_HOME", ".openseg/", "where metadata (SQLite), the lake and profile stores live"),
    ("OPENSEG_DATABASE_URL", "sqlite:///$OPENSEG_HOME/openseg.db", "metadata store; `postgresql+psycopg://...` for PostgreSQL"),
    ("OPENSEG_LAKE", "$OPENSEG_HOME/lake", "the Parquet data lake: a path, a `file://` URI or `s3://bucket/prefix` (DuckDB engine)"),
    ("OPENSEG_ENGINE", "duckdb", "evaluation engine: `duckdb` or `spark`"),
    ("OPENSEG_SPARK_MASTER", "local[2]",
     "Spark master: `local[N]`, a standalone cluster's `spark://host:7077`, or a Spark Connect server's `sc://host:15002`"),
    ("OPENSEG_SPARK_CONF", "none",
     "Spark settings over openseg's own, `key=value` pairs separated by `;`, e.g. "
     "`spark.executor.memory=4g;spark.sql.shuffle.partitions=200` (docs/scale-out.md)"),
    ("OPENSEG_HOST", "127.0.0.1", "address `openseg serve` binds"),
    ("OPENSEG_PORT", "8080", "port `openseg serve` listens on"),
    ("OPENSEG_BUILD_MEMORY_LIMIT", "2GB", "DuckDB memory limit of a merged-profile build (it spills to disk beyond)"),
    ("OPENSEG_JOB_MEMORY_LIMIT", "DuckDB's (80% of RAM)",
     "DuckDB memory limit of a segment job, e.g. `2GB` (it spills to `$OPENSEG_HOME/tmp` beyond)"),
    ("OPENSEG_MEMBERSHIP_SNAPSHOTS", "2",
     "membership snapshots kept per merge policy (the current one and the previous); older ones are pruned, "
     "history is kept"),
    ("OPENSEG_WORKER_NICE", "10",
     "how much lower than the API's the worker's CPU priority is (0-19; Linux nice): jobs and builds yield the "
     "CPU to requests"),
    ("OPENSEG_WORKER_MODE", "process",
     "where `openseg serve` runs its worker (jobs, builds, exports, queries, the scheduler and the streamer): "
     "`process`, a child `openseg worker` at the lower priority, restarted if it dies and stopped with the server, "
     "so the API's requests never wait on its Python code; `thread`, threads of the API's own process"),
    ("OPENSEG_STREAMER", "on",
     "`off`: the worker of `openseg serve` / `openseg worker` runs no streamer, because `openseg streamer` runs "
     "alone on this host (docs/scale-out.md)"),
    ("OPENSEG_STREAM_BUILD_SECONDS", "15",
     "seconds at least between two profile builds that streamed batches request (streamed records are visible "
     "at once through the overlay; a build folds them into the store; a read asks for it only once the build is "
     "twice this old)"),
    ("OPENSEG_STREAM_FSYNC", "checkpoint",
     "when the stream log (and the streamer's due times and offsets) are fsync'd: `checkpoint`, an acknowledged "
     "message survives `kill -9` of every process and a power cut may lose those since SQLite's last checkpoint of "
     "the log (one every ~4 MB of log: seconds at 500 messages a second, longer when traffic is light); `commit`, "
     "each group commit waits for the disk, so an acknowledgement survives a power cut too and takes longer "
     "(docs/reliability.md)"),
    ("OPENSEG_QUERY_MEMORY_LIMIT", "1GB", "memory one Query Service query may use (beyond it the query fails, naming the limit)"),
    ("OPENSEG_QUERY_THREADS", "1", "threads one Query Service query may use (1: a query never takes every core from jobs)"),
    ("OPENSEG_QUERY_TIMEOUT", "120", "seconds a Query Service query may run before it is stopped"),
    ("OPENSEG_EXPORT_FILE_ROWS", "1000000", "rows per Parquet file an export writes"),
    ("OPENSEG_PREVIEW_EXACT_LIMIT", "2000000", "sandboxes up to this many profiles get exact previews; larger ones a sampled estimate"),
)
