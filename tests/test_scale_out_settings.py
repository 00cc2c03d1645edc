"""The scale-out settings: ``OPENSEG_SPARK_MASTER``, ``OPENSEG_SPARK_CONF``, and data paths as ``file://`` URIs
(docs/scale-out.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openseg.config import Settings


def test_spark_conf_is_key_value_pairs_separated_by_semicolons(tmp_path: Path) -> None:
    conf = "spark.executor.memory=4g; spark.sql.shuffle.partitions=200;;spark.executor.extraJavaOptions=-Da=1 -Db=2,3;"
    settings = Settings.from_env(home=tmp_path, env={"OPENSEG_SPARK_CONF": conf})
    assert settings.spark_conf == (("spark.executor.memory", "4g"), ("spark.sql.shuffle.partitions", "200"),
                                   ("spark.executor.extraJavaOptions", "-Da=1 -Db=2,3"))
    assert Settings.from_env(home=tmp_path, env={}).spark_conf == ()


@pytest.mark.parametrize("conf", ["spark.executor.memory", "executor.memory=4g", "=4g"])
def test_a_spark_conf_item_that_is_not_a_spark_setting_is_refused(tmp_path: Path, conf: str) -> None:
    with pytest.raises(ValueError, match=r"^OPENSEG_SPARK_CONF: .* is not a 'spark.name=value' setting$"):
        Settings.from_env(home=tmp_path, env={"OPENSEG_SPARK_CONF": f"spark.cores.max=2;{conf}"})


def test_spark_master_is_a_cluster_or_a_spark_connect_server(tmp_path: Path) -> None:
    assert Settings.from_env(home=tmp_path, env={"OPENSEG_SPARK_MASTER": "sc://spark-connect:15002/;token=s3cret"}).spark_master == (
        "sc://spark-connect:15002/;token=s3cret")
    assert Settings.from_env(home=tmp_path, env={"OPENSEG_SPARK_MASTER": "spark://10.0.0.5:7077"}).spark_master == (
        "spark://10.0.0.5:7077")


def test_data_paths_may_be_file_uris(tmp_path: Path) -> None:
    shared = tmp_path / "shared data"
    settings = Settings.from_env(env={"OPENSEG_HOME": f"file://{shared.as_posix().replace(' ', '%20')}/home",
                                      "OPENSEG_LAKE": f"file://localhost{shared.as_posix()}/lake"})
    assert (settings.home, settings.lake) == (shared / "home", shared / "lake")
    assert settings.database_url == f"sqlite:///{shared}/home/openseg.db"


@pytest.mark.parametrize(("env", "message"), [
    ({"OPENSEG_HOME": "s3://bucket/home"}, "OPENSEG_HOME: s3:// URIs are not supported yet; use a path or a file:// URI"),
    ({"OPENSEG_HOME": "gs://bucket/home"}, "OPENSEG_HOME: gs:// URIs are not supported yet; use a path or a file:// URI"),
    ({"OPENSEG_LAKE": "file://nas/lake"}, "OPENSEG_LAKE: a file:// URI names no host (file:///path), not 'nas'"),
])
def test_other_uris_are_refused_by_name(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Settings.from_env(env={"OPENSEG_HOME": str(tmp_path), **env})
    assert str(raised.value).startswith(message)
