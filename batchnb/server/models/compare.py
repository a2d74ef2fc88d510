"""Comparing two deployments: ``POST endpoints/<name>/compare`` scores one input with both and joins
the outputs (see ``batchnb batch-endpoint compare``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...schemas import DeploymentName
from .base import _Request, _Response
from .endpoints import InputRef, InputType


class CompareRequest(_Request):
    """``POST endpoints/<name>/compare``: score one input with two deployments and compare the outputs.

    The two jobs run one after the other; the answer comes when both have ended and their outputs
    are joined (see ``batchnb batch-endpoint compare``).
    """

    deployments: Annotated[list[DeploymentName], Field(min_length=2, max_length=2)] = Field(
        description="The two deployments, A and B."
    )
    input: str | InputRef = Field(description="The input, as an invocation takes it.")
    input_type: InputType | None = None
    sample: int | None = Field(default=None, ge=1, description="Score only the first N items (files, or rows).")
    max_disagreements: int = Field(default=50, ge=0, le=10_000, description="How many disagreements to list.")


class DifferenceHistogram(_Response):
    """The absolute differences of a numeric column where A and B differ, binned from 0 to the largest."""

    zero: int = Field(description="Rows whose values are equal (not in the bins).")
    edges: list[float]
    counts: list[int]


class LabelPair(_Response):
    """One (A, B) pair of values of a column of labels and how many rows have it."""

    a: str
    b: str
    rows: int


class ColumnAgreement(_Response):
    """How A and B agree on one column."""

    equal: float = Field(description="The share of joined rows whose values are equal.")
    mean_abs_diff: float | None = None
    max_abs_diff: float | None = None
    histogram: DifferenceHistogram | None = None
    pairs: list[LabelPair] | None = Field(default=None, description="Labels: the most frequent pairs.")


class Disagreement(_Response):
    """A row where A and B differ on a column (``column`` "(row)": the row is in one output only); the
    two values are under the deployments' names."""

    source_file: str | None
    source_row: int | None
    column: str


class ComparisonThroughput(_Response):
    """One deployment's job in the comparison and its pace."""

    job: str
    items: int
    rows: int
    elapsed_s: float
    items_per_second: float | None
    rows_per_second: float | None


class Comparison(_Response):
    """The comparison of two deployments on one input."""

    endpoint: str
    deployments: list[str]
    input: str
    sample: int | None
    rows: dict[str, int] = Field(description="Each output's rows, the joined rows, the rows only one side has.")
    agreement: float = Field(description="The share of joined rows equal on every column.")
    columns: dict[str, ColumnAgreement]
    columns_only_in: dict[str, list[str]]
    rows_disagreeing: int
    disagreements: list[Disagreement]
    throughput: dict[str, ComparisonThroughput]
    outputs: dict[str, str]
