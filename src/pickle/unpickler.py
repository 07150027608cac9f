"""Our own pickle virtual machine: runs a pickle program with no way to import or call anything.

A pickle is a sequence of opcodes for a stack machine (see opcodes.py). Python's `pickle` executes
GLOBAL by importing the named module and REDUCE by calling the result, so loading an untrusted `.pth`
with it can run any code. This machine:

- knows only the opcodes torch.save emits; any other byte stops the load with UnsafeModelError;
- resolves GLOBAL / STACK_GLOBAL only through a fixed table (`TORCH_GLOBALS`) of our own functions
  and markers; any other name stops the load with UnsafeModelError;
- lets REDUCE call only an `AllowedCallable` taken from that table;
- hands persistent ids (torch's references to tensor storages) to a resolver the caller supplies.

Every read is bounds-checked, so a truncated pickle gives a ModelFileError that says where.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Callable, Mapping

from ..common.errors import ModelFileError, UnsafeModelError
from .opcodes import ALLOWED, Op, opcode_name
from .torch_globals import TORCH_GLOBALS, AllowedCallable, PickleValueError, TensorRecord

HIGHEST_PROTOCOL = 5

PersistentLoad = Callable[[Any], Any]


class Unpickler:
    """`Unpickler(data, path, persistent_load=...).load()` -> the pickled object.

    `path` is only used in error messages (it names the file, plus the entry inside a zip).
    """

    def __init__(
        self,
        data: bytes,
        path: str | Path,
        persistent_load: PersistentLoad | None = None,
        allowed_globals: Mapping[tuple[str, str], object] = TORCH_GLOBALS,
    ) -> None:
        self.data = bytes(data)
        self.path = str(path)
        self.persistent_load = persistent_load
        self.allowed_globals = allowed_globals
        self.position = 0
        self.opcode_start = 0  # where the opcode being executed starts, for messages
        self.stack: list[Any] = []
        self.marks: list[int] = []  # stack heights at each MARK
        self.memo: dict[int, Any] = {}
        self._dispatch: dict[Op, Callable[[], None]] = {
            Op.PROTO: self._proto,
            Op.FRAME: self._frame,
            Op.EMPTY_DICT: lambda: self.stack.append({}),
            Op.EMPTY_LIST: lambda: self.stack.append([]),
            Op.EMPTY_TUPLE: lambda: self.stack.append(()),
            Op.MARK: lambda: self.marks.append(len(self.stack)),
            Op.TUPLE: lambda: self.stack.append(tuple(self._pop_mark())),
            Op.TUPLE1: lambda: self._tuple_n(1),
            Op.TUPLE2: lambda: self._tuple_n(2),
            Op.TUPLE3: lambda: self._tuple_n(3),
            Op.SETITEM: self._setitem,
            Op.SETITEMS: self._setitems,
            Op.APPEND: self._append,
            Op.APPENDS: self._appends,
            Op.BINUNICODE: lambda: self.stack.append(self._text(self._uint(4))),
            Op.SHORT_BINUNICODE: lambda: self.stack.append(self._text(self._uint(1))),
            Op.BININT: lambda: self.stack.append(int.from_bytes(self._read(4), "little", signed=True)),
            Op.BININT1: lambda: self.stack.append(self._uint(1)),
            Op.BININT2: lambda: self.stack.append(self._uint(2)),
            Op.LONG1: lambda: self.stack.append(int.from_bytes(self._read(self._uint(1)), "little", signed=True)),
            Op.BINFLOAT: lambda: self.stack.append(struct.unpack(">d", self._read(8))[0]),
            Op.NEWFALSE: lambda: self.stack.append(False),
            Op.NEWTRUE: lambda: self.stack.append(True),
            Op.NONE: lambda: self.stack.append(None),
            Op.BINPUT: lambda: self._put(self._uint(1)),
            Op.LONG_BINPUT: lambda: self._put(self._uint(4)),
            Op.MEMOIZE: lambda: self._put(len(self.memo)),
            Op.BINGET: lambda: self._get(self._uint(1)),
            Op.LONG_BINGET: lambda: self._get(self._uint(4)),
            Op.GLOBAL: self._global,
            Op.STACK_GLOBAL: self._stack_global,
            Op.REDUCE: self._reduce,
            Op.BUILD: self._build,
            Op.BINPERSID: self._binpersid,
        }

    # ---- the loop -----------------------------------------------------------------------------
    def load(self) -> Any:
        while self.position < len(self.data):
            self.opcode_start = self.position
            byte = self.data[self.position]
            self.position += 1
            op = ALLOWED.get(byte)
            if op is None:
                raise UnsafeModelError(
                    self.path,
                    f"pickle opcode {opcode_name(byte)} (0x{byte:02x}) is not allowed (at byte {self.opcode_start}): "
                    f"only the opcodes torch.save writes are interpreted, and nothing was executed",
                )
            if op is Op.STOP:
                result = self._pop()
                if self.stack or self.marks:
                    raise self._error("STOP leaves values on the stack (malformed pickle)")
                return result
            self._dispatch[op]()
        raise self._error("pickle ends without a STOP opcode (truncated)")

    # ---- reading arguments --------------------------------------------------------------------
    def _read(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise self._error(
                f"needs {count} argument bytes but the pickle has only {len(self.data) - self.position} left (truncated)"
            )
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def _uint(self, size: int) -> int:
        return int.from_bytes(self._read(size), "little", signed=False)

    def _text(self, length: int) -> str:
        raw = self._read(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(f"string {raw[:40]!r} is not valid UTF-8") from None

    def _line(self) -> str:
        """GLOBAL's arguments are newline-terminated ASCII."""
        end = self.data.find(b"\n", self.position)
        if end < 0:
            raise self._error("GLOBAL argument has no terminating newline (truncated)")
        raw = self.data[self.position : end]
        self.position = end + 1
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self._error(f"GLOBAL argument {raw[:40]!r} is not ASCII") from None

    # ---- stack helpers ------------------------------------------------------------------------
    def _pop(self) -> Any:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise self._error("pops from an empty stack (malformed pickle)")
        return self.stack.pop()

    def _top(self) -> Any:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise self._error("reads the top of an empty stack (malformed pickle)")
        return self.stack[-1]

    def _pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self._error("needs a MARK but there is none (malformed pickle)")
        height = self.marks.pop()
        items = self.stack[height:]
        del self.stack[height:]
        return items

    def _tuple_n(self, count: int) -> None:
        items = [self._pop() for _ in range(count)]
        self.stack.append(tuple(reversed(items)))

    # ---- containers ---------------------------------------------------------------------------
    def _dict_target(self) -> dict[Any, Any]:
        target = self._top()
        if not isinstance(target, dict):
            raise self._error(f"sets items on a {type(target).__name__}, expected a dict")
        return target

    def _set(self, target: dict[Any, Any], key: Any, value: Any) -> None:
        try:
            target[key] = value
        except TypeError:
            raise self._error(f"dict key of type {type(key).__name__} is not hashable") from None

    def _setitem(self) -> None:
        value = self._pop()
        key = self._pop()
        self._set(self._dict_target(), key, value)

    def _setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise self._error("SETITEMS has an odd number of items after its MARK")
        target = self._dict_target()
        for i in range(0, len(items), 2):
            self._set(target, items[i], items[i + 1])

    def _list_target(self) -> list[Any]:
        target = self._top()
        if not isinstance(target, list):
            raise self._error(f"appends to a {type(target).__name__}, expected a list")
        return target

    def _append(self) -> None:
        value = self._pop()
        self._list_target().append(value)

    def _appends(self) -> None:
        items = self._pop_mark()
        self._list_target().extend(items)

    # ---- protocol and memo --------------------------------------------------------------------
    def _proto(self) -> None:
        version = self._uint(1)
        if version > HIGHEST_PROTOCOL:
            raise self._error(f"pickle protocol {version} is newer than the highest known ({HIGHEST_PROTOCOL})")

    def _frame(self) -> None:
        length = self._uint(8)
        if self.position + length > len(self.data):
            raise self._error(f"frame of {length} bytes runs past the end of the pickle (truncated)")

    def _put(self, index: int) -> None:
        self.memo[index] = self._top()

    def _get(self, index: int) -> None:
        if index not in self.memo:
            raise self._error(f"memo index {index} was never stored (malformed pickle)")
        self.stack.append(self.memo[index])

    # ---- objects: the allow-list --------------------------------------------------------------
    def _resolve(self, module: str, name: str) -> None:
        try:
            value = self.allowed_globals[(module, name)]
        except KeyError:
            raise UnsafeModelError(
                self.path,
                f"pickle global {module}.{name} (at byte {self.opcode_start}) is not on the allow-list of "
                f"torch state-dict globals; nothing was imported or called",
            ) from None
        self.stack.append(value)

    def _global(self) -> None:
        module = self._line()
        name = self._line()
        self._resolve(module, name)

    def _stack_global(self) -> None:
        name = self._pop()
        module = self._pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise self._error("STACK_GLOBAL needs two strings (module, name) on the stack")
        self._resolve(module, name)

    def _reduce(self) -> None:
        args = self._pop()
        function = self._pop()
        if not isinstance(function, AllowedCallable):
            raise UnsafeModelError(
                self.path,
                f"pickle REDUCE at byte {self.opcode_start} would call a {type(function).__name__} "
                f"({_short(function)}); only allow-listed functions may be called, and nothing was called",
            )
        if not isinstance(args, tuple):
            raise self._error(f"REDUCE arguments for {function.qualname} must be a tuple, got {type(args).__name__}")
        try:
            self.stack.append(function.function(*args))
        except (PickleValueError, TypeError) as exc:
            raise self._error(f"{function.qualname}: {exc}") from None

    def _build(self) -> None:
        state = self._pop()
        target = self._top()
        # torch writes BUILD only for objects with extra state; for a tensor the state carries
        # nothing inference needs, for a dict it is more items.
        if isinstance(target, TensorRecord) and (state is None or state == {} or state == ()):
            return
        if isinstance(target, dict) and isinstance(state, dict):
            target.update(state)
            return
        raise self._error(
            f"BUILD with state {type(state).__name__} on a {type(target).__name__} is not supported"
        )

    def _binpersid(self) -> None:
        pid = self._pop()
        if self.persistent_load is None:
            raise self._error("has a persistent id but no storage resolver was given")
        self.stack.append(self.persistent_load(pid))

    # ---- errors -------------------------------------------------------------------------------
    def _error(self, message: str) -> ModelFileError:
        byte = self.data[self.opcode_start] if self.opcode_start < len(self.data) else 0
        return ModelFileError(self.path, f"pickle opcode {opcode_name(byte)} at byte {self.opcode_start}: {message}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unpickle(
    data: bytes,
    path: str | Path,
    persistent_load: PersistentLoad | None = None,
    allowed_globals: Mapping[tuple[str, str], object] = TORCH_GLOBALS,
) -> Any:
    """Run the pickle program `data` on our VM and return its result."""
    return Unpickler(data, path, persistent_load, allowed_globals).load()


__all__ = ["HIGHEST_PROTOCOL", "Unpickler", "unpickle"]
