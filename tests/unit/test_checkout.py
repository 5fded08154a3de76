import pytest

from pipeline.checkout import CheckoutError, find_checkout
from pipeline.settings import PROJECT_ROOT


def make_checkout(path):
    (path / "flows").mkdir(parents=True)
    (path / "prefect.yaml").write_text("name: weather-pipeline\n", encoding="utf-8")
    return path


def test_find_checkout_is_the_folder_the_package_was_installed_from():
    assert find_checkout() == PROJECT_ROOT


def test_find_checkout_prefers_the_override_from_the_workers_environment(tmp_path):
    checkout = make_checkout(tmp_path / "srv" / "weather")

    assert find_checkout(str(checkout), installed_from=tmp_path / "elsewhere") == checkout


def test_find_checkout_refuses_a_folder_without_the_project_naming_where_it_looked(tmp_path):
    with pytest.raises(CheckoutError, match=f"PIPELINE_CHECKOUT={tmp_path} is not a checkout of the pipeline"):
        find_checkout(str(tmp_path))


def test_find_checkout_refuses_an_install_that_is_not_a_checkout(tmp_path):
    with pytest.raises(CheckoutError, match="install folder .* is not a checkout"):
        find_checkout(installed_from=tmp_path)
