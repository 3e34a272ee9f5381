"""How slugs may be spelled: one rule for profiles, GPU types and image names, a narrower one
for projects and organisations.

Why one module: slugs are checked in subsidyhub.yaml, the image catalog, the CLI, the service
and the ledger, and a rule written in each of them drifts. Each :class:`SlugRule` keeps its
regular expression and the same rule in words, so the pydantic types and the ledger's checks
are derived from one declaration and every refusal tells the person how to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

MAX_LENGTH = 63  # as a DNS label


@dataclass(frozen=True)
class SlugRule:
    """A lowercase letter or digit, then up to ``MAX_LENGTH - 1`` of ``characters``."""

    characters: str  # a regular-expression character class body, e.g. "a-z0-9-"
    in_words: str  # the same characters, as a person reads them

    @property
    def pattern(self) -> str:
        return rf"^[a-z0-9][{self.characters}]{{0,{MAX_LENGTH - 1}}}$"

    @property
    def description(self) -> str:
        return f"1-{MAX_LENGTH} {self.in_words}, starting with a letter or digit"

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.pattern, text) is not None

    def validate(self, text: str) -> str:
        """``text`` if it follows the rule; a pydantic validator (hence ``ValueError``)."""
        if not self.matches(text):
            raise ValueError(f"not a valid slug; use {self.description}")
        return text


SLUG = SlugRule("a-z0-9._-", "lowercase letters, digits, dots, underscores and dashes")
PROJECT_SLUG = SlugRule("a-z0-9-", "lowercase letters, digits and dashes")

Slug = Annotated[str, AfterValidator(SLUG.validate)]
ProjectSlug = Annotated[str, AfterValidator(PROJECT_SLUG.validate)]

# JupyterHub user names as the ledger stores them: 1-255 characters without whitespace, slashes
# (they become URL path segments) or control characters.
USERNAME_PATTERN = r"^[^\s/\x00-\x1f\x7f]{1,255}$"
USERNAME_DESCRIPTION = "1-255 characters without spaces, slashes or control characters"
