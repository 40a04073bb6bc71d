"""Names for a Lua script's KEYS and ARGV, written once for the script and for its callers.

Redis hands a script its keys and arguments as two positional arrays, so a script's layout used to
be written twice, as numbers in the Lua (``ARGV[3]``) and as list order in the Python that calls it,
kept in step by hand. A :class:`Layout` names the positions once. From it come a prologue, put
before the script's text, that reads each position into a local of its name
(``local now = ARGV[2]``), and the keys and arguments of a call, built from keyword arguments in
the layout's order (:meth:`Layout.build`), refusing a name missing or unknown.

Each of KEYS and ARGV is laid out as fixed names, then at most one list of any length, then fixed
names counted from the end. What is inside a list (a job's group of arguments, the claim's
per-queue groups of keys) stays the script's own arithmetic; the prologue gives it where the list
starts (``<list>_offset``: its i-th item, from 1, is ``KEYS[<list>_offset + i]``) and how long it is
(``<list>_count``), so that no script counts the fixed positions again. The layout only names what
is sent: the wire format, and so what is in Redis, is whatever the positions were.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import redis

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A name is a Lua local before the script's own text, so it must be one Lua takes, and must not hide
# what the scripts call (a local ``redis`` would break every ``redis.call`` after it).
_LUA_RESERVED = frozenset((
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in", "local", "nil", "not",
    "or", "repeat", "return", "then", "true", "until", "while",
    "KEYS", "ARGV", "redis", "cjson", "cmsgpack", "bit", "struct", "math", "string", "table", "tonumber", "tostring",
    "type", "unpack", "pairs", "ipairs", "pcall", "error", "assert", "select", "next"))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The positions of one script's KEYS and ARGV, by name.

    ``keys``, ``key_list``, ``last_keys``: the fixed keys, the name of the list of keys after them
    (None: none), and the fixed keys after the list (read from the end of KEYS); likewise ``args``,
    ``arg_list`` and ``last_args`` for ARGV. ``numbers``: the fixed arguments the prologue reads with
    ``tonumber``; the others stay the strings Redis passes, which a script may write back as they
    came (a number through Lua would be written in Lua's format).
    """

    #: What the layout is of, for the prologue's comment and the errors.
    name: str
    keys: tuple[str, ...] = ()
    key_list: str | None = None
    last_keys: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    arg_list: str | None = None
    last_args: tuple[str, ...] = ()
    numbers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", frozenset(self.numbers))
        for array, listed, last in (("KEYS", self.key_list, self.last_keys), ("ARGV", self.arg_list, self.last_args)):
            if last and listed is None:
                raise ValueError(f"{self.name}: {array} names last {last} without a list before them")
        locals_ = [*self._names(), *(f"{listed}_{part}" for listed in self._lists() for part in ("offset", "count"))]
        bad = [name for name in locals_ if not _NAME.match(name) or name in _LUA_RESERVED]
        if bad:
            raise ValueError(f"{self.name}: not a name a Lua local can take: {', '.join(bad)}")
        repeated = sorted({name for name in locals_ if locals_.count(name) > 1})
        if repeated:
            raise ValueError(f"{self.name}: named twice: {', '.join(repeated)}")
        stray = sorted(self.numbers - set(self.args) - set(self.last_args))
        if stray:
            raise ValueError(f"{self.name}: numbers names no fixed argument: {', '.join(stray)}")

    def _lists(self) -> list[str]:
        return [listed for listed in (self.key_list, self.arg_list) if listed is not None]

    def _names(self) -> list[str]:
        return [*self.keys, *([self.key_list] if self.key_list else []), *self.last_keys,
                *self.args, *([self.arg_list] if self.arg_list else []), *self.last_args]

    def prologue(self) -> str:
        """The Lua that names the positions: one local per fixed name, two per list."""
        return "\n".join([f"-- {self.name}: KEYS and ARGV by name, as its layout sends them (inferq.lua)",
                          *_locals("KEYS", self.keys, self.key_list, self.last_keys, frozenset()),
                          *_locals("ARGV", self.args, self.arg_list, self.last_args, self.numbers)]) + "\n"

    def script(self, body: str) -> str:
        """The script to send: the prologue, then ``body``, which reads its keys and arguments by name."""
        return self.prologue() + body

    def build(self, **values: object) -> tuple[list, list]:
        """The keys and the arguments of a call, each in the layout's order: a fixed name takes a
        value, a list's name a sequence. TypeError for a name missing or unknown, as a function's
        call would raise."""
        names = self._names()
        if values.keys() != set(names):
            missing = [name for name in names if name not in values]
            unknown = sorted(values.keys() - set(names))
            raise TypeError(f"{self.name}: " + "; ".join(
                [*([f"missing {', '.join(missing)}"] if missing else []),
                 *([f"unknown {', '.join(unknown)}"] if unknown else [])]))
        return (self._positional(values, self.keys, self.key_list, self.last_keys),
                self._positional(values, self.args, self.arg_list, self.last_args))

    def _positional(self, values: dict[str, object], fixed: Sequence[str], listed: str | None,
                    last: Sequence[str]) -> list:
        out = [values[name] for name in fixed]
        if listed is not None:
            items = values[listed]
            # A string is a sequence too, and would be sent one character a position.
            if isinstance(items, str | bytes) or not isinstance(items, Sequence):
                raise TypeError(f"{self.name}: {listed} must be a sequence, not {type(items).__name__}")
            out += items
        out += [values[name] for name in last]
        return out

    def command(self, **values: object) -> list:
        """The tail of an EVAL or EVALSHA sent by hand (a pipeline, a packed command): the number of
        keys, the keys, the arguments."""
        keys, args = self.build(**values)
        return [len(keys), *keys, *args]

    def call(self, script: redis.commands.core.Script, **values: object) -> Any:
        """Run ``script`` (registered with redis-py, which loads it if Redis has not) with the call's
        keys and arguments."""
        keys, args = self.build(**values)
        return script(keys=keys, args=args)


def _locals(array: str, fixed: Sequence[str], listed: str | None, last: Sequence[str],
            numbers: frozenset[str]) -> list[str]:
    def local(name: str, index: str) -> str:
        return f"local {name} = tonumber({array}[{index}])" if name in numbers else f"local {name} = {array}[{index}]"

    lines = [local(name, str(position)) for position, name in enumerate(fixed, 1)]
    if listed is not None:
        around = len(fixed) + len(last)
        count = f"#{array} - {around}" if around else f"#{array}"
        lines.append(f"local {listed}_offset, {listed}_count = {len(fixed)}, {count}")
    # The last names from the end: the list before them has any length.
    lines += [local(name, f"#{array} - {back}" if back else f"#{array}")
              for back, name in zip(range(len(last) - 1, -1, -1), last, strict=True)]
    return lines
