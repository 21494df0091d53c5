"""What is specific to the PostgreSQL dialect (the shared behaviour runs in the contract suite)."""

from __future__ import annotations

import pytest

from mandala.backends.postgres import redact_url
from mandala.errors import StorageError
from mandala.imports import Storage, op


def test_redact_url_hides_the_password_only() -> None:
    assert redact_url("postgresql://ann:s3cret@db:5432/exp") == "postgresql://ann:***@db:5432/exp"
    assert redact_url("postgresql://ann@db/exp") == "postgresql://ann@db/exp"


def test_a_wrong_server_is_a_clear_error_without_the_password() -> None:
    url = "postgresql://ann:s3cret@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(StorageError) as info:
        Storage(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert "127.0.0.1:1" in message


def test_repr_and_db_path_never_show_the_password(postgres_location: str) -> None:
    scheme, _, rest = postgres_location.partition("://")
    user, _, host = rest.partition("@")
    # trust auth: the server ignores the password, which must still never be shown
    storage = Storage(f"{scheme}://{user}:not-the-password@{host}")
    assert "not-the-password" not in repr(storage)
    assert "not-the-password" not in storage.db_path


def test_two_storages_on_one_database_see_each_others_commits(postgres_location: str) -> None:
    runs: list[int] = []

    @op
    def square(x):
        runs.append(x)
        return x * x

    first, second = Storage(postgres_location), Storage(postgres_location)
    with first:
        square(3)
    with second:
        result = square(3)
    assert runs == [3]
    assert second.unwrap(result) == 9
