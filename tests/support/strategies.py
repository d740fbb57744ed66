"""Hypothesis strategies shared by the unit and handler tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Keys the collector looks at, so generated documents reach deep into validation.
INGEST_KEYS = [
    "host",
    "points",
    "events",
    "fields",
    "tags",
    "time",
    "measurement",
    "data",
    "service",
    "status",
    "heartbeat",
]


def json_documents(
    max_text: int = 20, max_list: int = 4, max_leaves: int = 30
) -> st.SearchStrategy:
    """Arbitrary JSON documents biased toward the shapes the collector accepts."""
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=max_text),
        lambda children: (
            st.lists(children, max_size=max_list)
            | st.dictionaries(
                st.sampled_from(INGEST_KEYS) | st.text(max_size=8), children, max_size=5
            )
        ),
        max_leaves=max_leaves,
    )
