"""MIME bundles without IPython (sandbox/display.py), on the host."""

from __future__ import annotations

import base64
import json
from typing import Any

from ai_data_agent.sandbox.display import fit, mime_bundle, plain_text


class Rich:
    def _repr_html_(self) -> str:
        return "<b>rich</b>"

    def _repr_png_(self) -> bytes:
        return b"\x89PNG fake"

    def _repr_json_(self) -> dict[str, Any]:
        return {"a": [1, 2]}

    def __repr__(self) -> str:
        return "Rich()"


class Bundled:
    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> Any:
        return {"text/markdown": "# title", "text/plain": "plain!"}, {"text/markdown": {"x": 1}}


class Failing:
    def _repr_html_(self) -> str:
        raise RuntimeError("no html today")

    def _repr_latex_(self) -> str:
        return r"$x^2$"


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("nope")


def test_every_representation_an_object_offers_and_text_plain() -> None:
    data, metadata = mime_bundle(Rich())
    assert data["text/html"] == "<b>rich</b>"
    assert base64.b64decode(data["image/png"]) == b"\x89PNG fake"
    assert data["application/json"] == {"a": [1, 2]}
    assert data["text/plain"] == "Rich()"
    assert metadata == {}
    json.dumps(data)  # all of it travels as JSON


def test_repr_mimebundle_with_metadata_wins_and_keeps_its_plain_text() -> None:
    data, metadata = mime_bundle(Bundled())
    assert data == {"text/markdown": "# title", "text/plain": "plain!"}
    assert metadata == {"text/markdown": {"x": 1}}


def test_a_representation_that_raises_is_skipped() -> None:
    data, _ = mime_bundle(Failing())
    assert "text/html" not in data
    assert data["text/latex"] == r"$x^2$"


def test_a_repr_that_raises_still_gives_text() -> None:
    assert plain_text(BadRepr()) == "<BadRepr object; repr failed: ValueError>"
    assert mime_bundle(BadRepr())[0] == {"text/plain": "<BadRepr object; repr failed: ValueError>"}


def test_classes_are_shown_by_repr_not_by_their_unbound_methods() -> None:
    data, _ = mime_bundle(Rich)
    assert set(data) == {"text/plain"}


def test_plain_values() -> None:
    assert mime_bundle(42)[0] == {"text/plain": "42"}
    assert mime_bundle("x")[0] == {"text/plain": "'x'"}


def test_fit_drops_the_richest_first_then_cuts_text() -> None:
    data = {"text/plain": "p" * 100, "image/png": "i" * 5000, "text/html": "h" * 2000}
    kept, cut = fit(data, 3000)
    assert cut is True
    assert "image/png" not in kept and kept["text/html"] == "h" * 2000
    kept, cut = fit({"text/plain": "p" * 10_000}, 1000)
    assert cut is True
    assert len(json.dumps(kept)) <= 1000
    assert kept["text/plain"].endswith("... [cut]")
    assert fit({"text/plain": "x"}, 1000) == ({"text/plain": "x"}, False)
