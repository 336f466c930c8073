"""Attention extraction: the only package (with models/) that imports torch, and only when run."""

from __future__ import annotations

from .run import ExtractRequest, check_request, extract, extract_from_model

__all__ = ["ExtractRequest", "check_request", "extract", "extract_from_model"]
