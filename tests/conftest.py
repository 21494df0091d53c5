"""Shared fixtures: one ``storage`` fixture over every backend, file stores, subprocesses.

Backends are listed once, in :data:`STORAGE_FACTORIES` (every store) and
:data:`PERSISTENT_FACTORIES` (stores that outlive the ``Storage`` object). Adding the PostgreSQL
backend means appending one factory to each list (reading ``MANDALA_TEST_POSTGRES_URL`` and
skipping when it is unset); every storage test then runs against it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mandala.imports import Storage
from tests.harness.processes import REPO_ROOT, child_env

# ---------------------------------------------------------------------------- backends

StorageFactory = Callable[[Path], Storage]
"""Makes a fresh, empty storage; receives a per-test temporary directory it may use."""


def _memory(tmp_path: Path) -> Storage:
    return Storage()


def _sqlite_file(tmp_path: Path) -> Storage:
    return Storage(db_path=tmp_path / "s.db")


POSTGRES_URL = os.environ.get("MANDALA_TEST_POSTGRES_URL")
"""A PostgreSQL server the tests may use (they create, then drop, a database of their own).
Unset on a laptop without a server: PostgreSQL tests are then not collected. CI sets it."""

_postgres_database: dict[str, str] = {}


def _postgres_test_database() -> str:
    """URL of this test session's own database, created on first use."""
    if "url" not in _postgres_database:
        import psycopg

        assert POSTGRES_URL is not None
        name = f"mandala_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        base, _, _ = POSTGRES_URL.rpartition("/")
        _postgres_database["url"] = f"{base}/{name}"
        _postgres_database["name"] = name
    return _postgres_database["url"]


def _postgres_location(tmp_path: Path) -> str:
    """A fresh schema in the session's database, as a URL whose search_path points at it."""
    import psycopg

    url = _postgres_test_database()
    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{url}?options=-csearch_path%3D{schema}"


def _postgres(tmp_path: Path) -> Storage:
    return Storage(db_path=_postgres_location(tmp_path))


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_test_database() -> Iterator[None]:
    yield
    if "name" in _postgres_database:
        import psycopg

        assert POSTGRES_URL is not None
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_postgres_database['name']} WITH (FORCE)")


@pytest.fixture
def postgres_location(tmp_path: Path) -> str:
    """URL of a fresh PostgreSQL store (a schema of the test database); skips without a server."""
    if not POSTGRES_URL:
        pytest.skip("MANDALA_TEST_POSTGRES_URL is not set")
    return _postgres_location(tmp_path)


STORAGE_FACTORIES: list[tuple[str, StorageFactory]] = [
    ("memory", _memory),
    ("sqlite_file", _sqlite_file),
]

PersistentLocation = Callable[[Path], str]
"""Gives the location (path or URL) of a fresh persistent store; ``Storage(location)`` opens it."""

PERSISTENT_FACTORIES: list[tuple[str, PersistentLocation]] = [
    ("sqlite_file", lambda tmp_path: str(tmp_path / "s.db")),
]

if POSTGRES_URL:
    STORAGE_FACTORIES.append(("postgres", _postgres))
    PERSISTENT_FACTORIES.append(("postgres", _postgres_location))
elif os.environ.get("CI"):
    raise RuntimeError(
        "CI must test the PostgreSQL backend: set MANDALA_TEST_POSTGRES_URL (see .ci/run)"
    )


@pytest.fixture(
    params=[factory for _, factory in STORAGE_FACTORIES],
    ids=[name for name, _ in STORAGE_FACTORIES],
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A fresh, empty storage of each backend kind."""
    return request.param(tmp_path)


class PersistentStore:
    """A persistent store location; :meth:`open` gives a new ``Storage`` (a new session) on it."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.opened: list[Storage] = []

    def open(self, **kwargs: object) -> Storage:
        storage = Storage(self.location, **kwargs)  # type: ignore[arg-type]
        self.opened.append(storage)
        return storage


@pytest.fixture(
    params=[factory for _, factory in PERSISTENT_FACTORIES],
    ids=[name for name, _ in PERSISTENT_FACTORIES],
)
def persistent(request: pytest.FixtureRequest, tmp_path: Path) -> PersistentStore:
    """A persistent store location of each backend kind that outlives its Storage objects."""
    return PersistentStore(request.param(tmp_path))


@pytest.fixture
def fresh_db_path(tmp_path: Path) -> Path:
    """The path of a SQLite store file that does not exist yet."""
    return tmp_path / "fresh.db"


def reopen_storage(storage: Storage, **kwargs: object) -> Storage:
    """A new Storage object (a new session, empty cache) on the same file as ``storage``."""
    if storage.db_path == ":memory:":
        raise ValueError("an in-memory storage cannot be reopened")
    return Storage(storage.db_path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def reopen() -> Callable[..., Storage]:
    """:func:`reopen_storage` as a fixture: ``reopen(storage)`` starts a new session on its file."""
    return reopen_storage


# ---------------------------------------------------------------------------- subprocesses


def run_snippet(
    code: str,
    *args: str,
    timeout: float = 60,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with ``sys.executable -c`` in a fresh interpreter.

    Extra ``args`` become ``sys.argv[1:]``. With ``check`` a non-zero exit fails the test and
    shows the child's stderr.
    """
    full_env = child_env(**(env or {}))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(REPO_ROOT),
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"subprocess exited with {result.returncode}\n--- stdout\n{result.stdout}"
            f"\n--- stderr\n{result.stderr}"
        )
    return result


@pytest.fixture
def snippet() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`run_snippet` as a fixture."""
    return run_snippet


# ---------------------------------------------------------------------------- dask


@pytest.fixture(scope="session")
def dask_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``distributed.Client`` on a LocalCluster of 2 worker processes (started once: slow)."""
    import distributed  # in the test extra: missing, the tests fail rather than skip

    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        local_directory=str(tmp_path_factory.mktemp("dask")),
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


# ---------------------------------------------------------------------------- ray


@pytest.fixture(scope="session")
def ray_modules_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder on the import path of this process and of the Ray workers (see
    :func:`ray_module`), for modules that tests write and workers import by name."""
    folder = tmp_path_factory.mktemp("ray_modules")
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="session")
def ray_module(ray_modules_dir: Path) -> Iterator[Any]:
    """The ``ray`` module, initialized once for the session: a local instance with 2 CPUs
    (starting one takes seconds), shut down at the end.

    Its workers import this checkout and the modules of ``ray_modules_dir`` (both on the
    ``PYTHONPATH`` the instance starts with). Without ray installed the Ray tests skip, except
    in CI (``CI`` set), where they must run: there they fail instead.
    """
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    with pytest.MonkeyPatch.context() as patch:
        path = [str(REPO_ROOT), str(ray_modules_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        patch.setenv("PYTHONPATH", os.pathsep.join(path))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
