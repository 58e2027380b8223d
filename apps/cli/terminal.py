"""Printing styled lines: above the prompt while one is open, else straight to the terminal."""

from __future__ import annotations

from prompt_toolkit import print_formatted_text
from prompt_toolkit.application.current import get_app_session
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style

from .render import STYLE, Fragments

STYLE_SHEET = Style.from_dict(STYLE)


def show(fragments: Fragments) -> None:
    """Print a line (or a block of lines); an open prompt is redrawn below it, as it was."""
    print_formatted_text(FormattedText(fragments), style=STYLE_SHEET)


def bell() -> None:
    output = get_app_session().output
    output.bell()
    output.flush()
