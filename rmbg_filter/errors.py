"""The errors this package raises for problems a user can fix, and how each adapter words them.

The CLI prints their message as one line and exits with status 2 (InputError)
or 1 (ProcessingError). An OptionError knows which option was wrong; its
message names options through ``Mention`` parts, and each adapter renders
them in its own spelling (``--device cpu``, ``device='cpu'``, ``device=cpu``)
with ``OptionError.worded``. ``str()`` gives the keyword spelling of
``rmbg_filter.load()``. An OptionNotice is worded the same way but is not raised: it is a
warning, logged, about an option whose value works yet is a poor choice here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEYWORDS", "InputError", "Mention", "ModelLoadError", "ModelNotFoundError", "OptionError", "OptionNotice",
           "ProcessingError", "Spelling", "first_line", "one_line", "system_reason"]


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``): a path with a newline
    in its name still makes a one-line message."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


class InputError(Exception):
    """Bad input from the user (a file, an option, a stream): one line says what and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class ProcessingError(Exception):
    """Work on valid-looking input failed part way (a decode error in the middle): exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


@dataclass(frozen=True)
class Mention:
    """An option named inside an error message, optionally with a value.

    ``literal``: the value is a word to type as is (``cpu``); otherwise a
    placeholder such as ``PATH``.
    """

    option: str
    value: str | None = None
    literal: bool = True


@dataclass(frozen=True)
class Spelling:
    """How one adapter writes an option's name, and an option set to a value.

    ``name`` and ``assignment`` are patterns: ``{name}`` is the option's name
    with ``separator`` between its words; ``{value}`` the value, quoted with
    ``quote`` when literal.
    """

    name: str
    assignment: str
    separator: str = "_"
    quote: str = ""

    def render(self, mention: Mention) -> str:
        """``mention`` in this spelling."""
        name = mention.option.replace("_", self.separator)
        if mention.value is None:
            return self.name.format(name=name)
        value = f"{self.quote}{mention.value}{self.quote}" if mention.literal else mention.value
        return self.assignment.format(name=name, value=value)


#: Python keyword arguments: rmbg_filter.load() and the VapourSynth functions
KEYWORDS = Spelling(name="{name}=", assignment="{name}={value}", quote="'")


class OptionError(InputError, ValueError):
    """An option (``option``, a ModelOptions field name or ``output``) has a value that cannot be used.

    ``parts`` are the message: text, and Mentions of options that each adapter spells its own way.
    """

    def __init__(self, option: str, *parts: str | Mention) -> None:
        self.option = option
        self.parts = parts
        super().__init__(self.worded(KEYWORDS))

    def worded(self, spelling: Spelling) -> str:
        """The message with every option in ``spelling``, on one line."""
        return _worded(self.parts, spelling)


class OptionNotice:
    """A warning about an option (``option``) whose value works but is a poor choice here; not raised but
    logged as the record's message (``logger.warning(notice)``).

    ``parts`` are the message, as OptionError's: ``str()`` words it for ``rmbg_filter.load()``
    (``dtype='float32'``), which is what a handler that knows no better prints; an adapter's own
    handler renders ``worded`` in its spelling (``--dtype float32``).
    """

    def __init__(self, option: str, *parts: str | Mention) -> None:
        self.option = option
        self.parts = parts

    def worded(self, spelling: Spelling) -> str:
        """The message with every option in ``spelling``, on one line."""
        return _worded(self.parts, spelling)

    def __str__(self) -> str:
        return self.worded(KEYWORDS)

    def __repr__(self) -> str:
        return f"OptionNotice({self.option!r}, {str(self)!r})"


def _worded(parts: tuple[str | Mention, ...], spelling: Spelling) -> str:
    """Message ``parts`` with every Mention in ``spelling``, on one line."""
    return one_line("".join(part if isinstance(part, str) else spelling.render(part) for part in parts))


class ModelLoadError(OptionError):
    """The model could not be found, read or matched to RMBG-1.4 (the ``model`` option)."""

    def __init__(self, *parts: str | Mention) -> None:
        super().__init__("model", *parts)


class ModelNotFoundError(ModelLoadError):
    """No file, directory or Hub repo goes by the ``model`` given (hosts with a "not found" error code use it)."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def system_reason(error: OSError) -> str:
    """What the system said of an OSError, without its file name: ``No space left on device``; the first
    line of its message where it has no ``strerror``."""
    return error.strerror or first_line(error)
