"""How a slow first download stream is split into ranged parts (``download.part_size_for``)."""

from __future__ import annotations

import pytest

from airflow_provider_dropbox.client.content_hash import BLOCK_SIZE
from airflow_provider_dropbox.client.download import (
    CAPPED_STREAM,
    MAX_PART,
    MIN_PART,
    part_size_for,
)

MiB = 1024 * 1024


@pytest.mark.parametrize("parallelism", [2, 4, 8, 16])
def test_a_capped_stream_gets_one_part_per_connection(parallelism: int) -> None:
    left = 1018 * MiB
    step = part_size_for(left, parallelism, rate=24 * MiB)
    assert step % BLOCK_SIZE == 0
    assert -(-left // step) == parallelism  # every connection one request, all ending together
    assert step > MAX_PART


@pytest.mark.parametrize("rate", [None, CAPPED_STREAM, 80 * MiB, 900 * MiB])
def test_a_fast_or_unmeasured_stream_keeps_small_parts(rate: float | None) -> None:
    assert part_size_for(1018 * MiB, 8, rate=rate) == MAX_PART
    assert part_size_for(40 * MiB, 8, rate=rate) == MIN_PART


def test_a_capped_small_rest_never_goes_below_the_minimum_part() -> None:
    assert part_size_for(20 * MiB, 8, rate=10 * MiB) == MIN_PART
