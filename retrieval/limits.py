"""Bounds on what a client may send to an index: searches (`SearchLimits`, per index, the `limits`
of an index in the server's configuration) and documents (`DocumentLimits`).

Requests outside them are refused with `InvalidArgument` naming the field, never clipped. The
defaults are sized so that no single request can make SQLite, `json.loads` or the embedder fail
or run long: a filter turns into at most `max_filter_keys + max_filter_values` SQL parameters,
under SQLite's smallest compiled-in limit of 999.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

SQLITE_MAX_VARIABLES = 999
"""The fewest SQL parameters any SQLite build allows in one statement (3.32 and later: 32,766)."""

FILTER_DEPTH = 2
"""A filter is an object of scalars or lists of scalars: JSON nested deeper is refused unparsed."""

METADATA_DEPTH = 2
"""Document metadata has the same shape as a filter (an object of scalars or lists of them)."""


class SearchLimits(BaseModel):
    """Bounds on a search request; requests outside them are refused, not clipped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_k: int = Field(default=100, gt=0, description="Largest k a search may ask for.")
    max_query_chars: int = Field(default=4000, gt=0, description="Longest query, in characters.")
    max_queries: int = Field(default=1024, gt=0, description="Most queries in one batch search.")
    max_filter_chars: int = Field(
        default=16_384, gt=0, description="Longest filter, as JSON text (`filter_json`), in characters."
    )
    max_filter_keys: int = Field(default=32, gt=0, description="Most keys in one filter.")
    max_filter_values: int = Field(
        default=256,
        gt=0,
        description="Most values in one filter, all keys together (each element of a list counts).",
    )
    max_filter_key_chars: int = Field(default=256, gt=0, description="Longest filter key, in characters.")
    max_filter_value_chars: int = Field(
        default=1024, gt=0, description="Longest string value in a filter, in characters."
    )

    @model_validator(mode="after")
    def _filter_fits_sqlite(self) -> "SearchLimits":
        # Each key takes one parameter (its JSON path) besides its values.
        if self.max_filter_keys + self.max_filter_values > SQLITE_MAX_VARIABLES:
            raise ValueError(
                f"max_filter_keys + max_filter_values must be at most {SQLITE_MAX_VARIABLES} "
                "(SQLite's parameter limit)"
            )
        return self


class DocumentLimits(BaseModel):
    """Bounds on one document (an `AddDocuments` document, a line of a documents file).

    A document's id is at most 512 characters (fixed: it is the key every passage id is made of).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_text_chars: int = Field(default=1_000_000, gt=0, description="Longest document text, in characters.")
    max_title_chars: int = Field(default=1_000, gt=0, description="Longest title, in characters.")
    max_source_chars: int = Field(default=2_000, gt=0, description="Longest source, in characters.")
    max_metadata_chars: int = Field(
        default=65_536, gt=0, description="Largest metadata object, as JSON text, in characters."
    )
    max_metadata_keys: int = Field(default=128, gt=0, description="Most keys in a document's metadata.")
    max_metadata_key_chars: int = Field(default=256, gt=0, description="Longest metadata key, in characters.")
