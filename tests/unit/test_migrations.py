"""Migration files: numbered once each, in the order they apply."""

from importlib import resources

import pytest

from pipeline.warehouse import WarehouseError, migration_files


def names(folder) -> list[str]:
    return [entry.name for entry in migration_files(folder)]


def test_the_shipped_migrations_apply_in_number_order():
    shipped = names(resources.files("pipeline").joinpath("sql", "migrations"))
    assert shipped[0] == "001_warehouse.sql"
    assert shipped == sorted(shipped)
    numbers = [name[:3] for name in shipped]
    # 005 is the one number two files share, from before the runner checked.
    assert len(numbers) - len(set(numbers)) == 1 and numbers.count("005") == 2


def test_a_number_two_new_files_share_is_refused_naming_both_and_the_next_free_one(tmp_path):
    for name in ("001_first.sql", "002_second.sql", "002_third.sql"):
        (tmp_path / name).write_text("select 1;")
    with pytest.raises(WarehouseError, match=r"002_second.sql, 002_third.sql share the number 002.*\(003\)"):
        migration_files(tmp_path)


def test_the_grandfathered_pair_is_the_only_one_allowed_to_share_005(tmp_path):
    for name in ("005_api_calls.sql", "005_outbox.sql"):
        (tmp_path / name).write_text("select 1;")
    assert names(tmp_path) == ["005_api_calls.sql", "005_outbox.sql"]
    (tmp_path / "005_more.sql").write_text("select 1;")
    with pytest.raises(WarehouseError, match="share the number 005"):
        migration_files(tmp_path)


@pytest.mark.parametrize("name", ["8_wind.sql", "008-wind.sql", "008_Wind.sql", "wind.sql"])
def test_a_file_without_its_three_digit_number_is_refused(tmp_path, name):
    (tmp_path / name).write_text("select 1;")
    with pytest.raises(WarehouseError, match="is not named NNN_what_it_does.sql"):
        migration_files(tmp_path)


def test_files_other_than_sql_are_not_migrations(tmp_path):
    (tmp_path / "001_first.sql").write_text("select 1;")
    (tmp_path / "README.md").write_text("notes")
    assert names(tmp_path) == ["001_first.sql"]
