"""The Spark settings: ``OPENSEG_SPARK_MASTER`` and ``OPENSEG_SPARK_CONF`` (docs/scale-out.md)."""

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


def test_spark_connect_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^OPENSEG_SPARK_MASTER: Spark Connect \(sc://\) is not supported yet"):
        Settings.from_env(home=tmp_path, env={"OPENSEG_SPARK_MASTER": "sc://spark-connect:15002"})
    assert Settings.from_env(home=tmp_path, env={"OPENSEG_SPARK_MASTER": "spark://10.0.0.5:7077"}).spark_master == (
        "spark://10.0.0.5:7077")
