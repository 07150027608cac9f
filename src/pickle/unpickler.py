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

Bounded work (see limits.py for the numbers and their reasons): before a value is built, the VM
checks its nesting depth, the number of objects and memo entries so far, the size of the container
it goes into and the length of strings. A list or dict may only be filled while it is not yet
inside another value (torch.save always fills a container before nesting it), so a depth computed
when a value is nested stays true, and cycles cannot be built. Dict keys are hashed only when they
are small flat values, and error messages quote the file's values through `short_repr`.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Callable, Mapping

from ..common.errors import ModelFileError, UnsafeModelError
from ..common.saferepr import short_repr
from .limits import DEFAULT_LIMITS, Limits
from .opcodes import ALLOWED, Op, opcode_name
from .torch_globals import TORCH_GLOBALS, AllowedCallable, PickleValueError, TensorRecord

HIGHEST_PROTOCOL = 5

PersistentLoad = Callable[[Any], Any]


_MUTABLE = (list, dict)


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
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.path = str(path)
        self.limits = limits
        if len(data) > limits.max_pickle_bytes:
            raise ModelFileError(
                self.path,
                f"the pickle is {len(data)} bytes, more than the limit of {limits.max_pickle_bytes} "
                f"(a state dict needs about 100 bytes per tensor)",
            )
        self.data = bytes(data)
        self.persistent_load = persistent_load
        self.allowed_globals = allowed_globals
        self.position = 0
        self.opcode_start = 0  # where the opcode being executed starts, for messages
        self.stack: list[Any] = []
        self.marks: list[int] = []  # stack heights at each MARK
        self.memo: dict[int, Any] = {}
        self.objects = 0  # values pushed so far, checked against limits.max_objects
        # Nesting depth of every container (and tensor record) the VM made, by id. The table also
        # keeps each one alive, so an id is never reused for another object during the load.
        self._depths: dict[int, tuple[Any, int]] = {}
        self._sealed: set[int] = set()  # ids of lists/dicts already inside another value
        self._dispatch: dict[Op, Callable[[], None]] = {
            Op.PROTO: self._proto,
            Op.FRAME: self._frame,
            Op.EMPTY_DICT: lambda: self._push_new({}, 1),
            Op.EMPTY_LIST: lambda: self._push_new([], 1),
            Op.EMPTY_TUPLE: lambda: self._push_new((), 1),
            Op.MARK: self._mark,
            Op.TUPLE: lambda: self._push_tuple(self._pop_mark()),
            Op.TUPLE1: lambda: self._tuple_n(1),
            Op.TUPLE2: lambda: self._tuple_n(2),
            Op.TUPLE3: lambda: self._tuple_n(3),
            Op.SETITEM: self._setitem,
            Op.SETITEMS: self._setitems,
            Op.APPEND: self._append,
            Op.APPENDS: self._appends,
            Op.BINUNICODE: lambda: self._push(self._text(self._uint(4))),
            Op.SHORT_BINUNICODE: lambda: self._push(self._text(self._uint(1))),
            Op.BININT: lambda: self._push(int.from_bytes(self._read(4), "little", signed=True)),
            Op.BININT1: lambda: self._push(self._uint(1)),
            Op.BININT2: lambda: self._push(self._uint(2)),
            Op.LONG1: lambda: self._push(int.from_bytes(self._read(self._uint(1)), "little", signed=True)),
            Op.BINFLOAT: lambda: self._push(struct.unpack(">d", self._read(8))[0]),
            Op.NEWFALSE: lambda: self._push(False),
            Op.NEWTRUE: lambda: self._push(True),
            Op.NONE: lambda: self._push(None),
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
        if length > self.limits.max_string_bytes:
            raise self._error(f"a string of {length} bytes is longer than the limit of {self.limits.max_string_bytes}")
        raw = self._read(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(f"string {raw[:40]!r} is not valid UTF-8") from None

    def _line(self) -> str:
        """GLOBAL's arguments are newline-terminated ASCII."""
        end = self.data.find(b"\n", self.position, self.position + self.limits.max_string_bytes + 1)
        if end < 0:
            raise self._error("GLOBAL argument has no terminating newline (truncated or too long)")
        raw = self.data[self.position : end]
        self.position = end + 1
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self._error(f"GLOBAL argument {raw[:40]!r} is not ASCII") from None

    # ---- bounded values -----------------------------------------------------------------------
    def _push(self, value: Any) -> None:
        self.objects += 1
        if self.objects > self.limits.max_objects:
            raise self._error(f"the pickle builds more than {self.limits.max_objects} values (the object limit)")
        self.stack.append(value)

    def _depth(self, value: Any) -> int:
        entry = self._depths.get(id(value))
        return 0 if entry is None else entry[1]

    def _track(self, value: Any, depth: int) -> None:
        """Record `value`'s nesting depth, refusing one beyond the limit."""
        if depth > self.limits.max_depth:
            raise self._error(
                f"values are nested more than {self.limits.max_depth} levels deep (the depth limit; "
                f"a state dict is about 5 deep)"
            )
        self._depths[id(value)] = (value, depth)

    def _push_new(self, value: Any, depth: int) -> None:
        self._track(value, depth)
        self._push(value)

    def _seal(self, value: Any) -> None:
        """`value` is now inside another value: from here on it may not change."""
        if type(value) in _MUTABLE:
            self._sealed.add(id(value))

    def _check_size(self, size: int, what: str) -> None:
        if size > self.limits.max_container_items:
            raise self._error(f"a {what} of {size} items is larger than the limit of {self.limits.max_container_items}")

    def _push_tuple(self, items: list[Any]) -> None:
        self._check_size(len(items), "tuple")
        for item in items:
            self._seal(item)
        depth = 1 + max((self._depth(item) for item in items), default=0)
        self._push_new(tuple(items), depth)

    def _mutable(self, target: Any, kind: type, verb: str) -> Any:
        """The container on top of the stack, checked: the right kind, and not yet nested."""
        if not isinstance(target, kind):
            raise self._error(f"{verb} a {type(target).__name__}, expected a {kind.__name__}")
        if id(target) in self._sealed:
            raise self._error(
                f"{verb} a {kind.__name__} that is already inside another value; torch.save fills every "
                f"container before nesting it (this is how cyclic or ever-deeper structures are built)"
            )
        return target

    def _add_items(self, target: Any, items: list[Any], size: int) -> None:
        """Account for `items` going into `target`: no cycles, the depth and size limits."""
        self._check_size(size, type(target).__name__)
        depth = self._depth(target)
        for item in items:
            if item is target:
                raise self._error(f"puts a {type(target).__name__} inside itself (a cyclic structure)")
            self._seal(item)
            depth = max(depth, 1 + self._depth(item))
        self._track(target, depth)

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

    def _mark(self) -> None:
        self.objects += 1  # a mark costs memory like a value
        if self.objects > self.limits.max_objects:
            raise self._error(f"the pickle builds more than {self.limits.max_objects} values (the object limit)")
        self.marks.append(len(self.stack))

    def _pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self._error("needs a MARK but there is none (malformed pickle)")
        height = self.marks.pop()
        items = self.stack[height:]
        del self.stack[height:]
        return items

    def _tuple_n(self, count: int) -> None:
        items = [self._pop() for _ in range(count)]
        self._push_tuple(list(reversed(items)))

    # ---- containers ---------------------------------------------------------------------------
    def _check_key(self, key: Any) -> None:
        """Only small flat keys are hashed: hashing anything else can cost unbounded work."""
        kind = type(key)
        if kind is str or kind is bool or key is None:
            return
        if kind is int and -self.limits.max_key_int < key < self.limits.max_key_int:
            return
        raise self._error(
            f"dict key {short_repr(key, self.limits.max_repr_chars)} ({kind.__name__}) is not a small flat value "
            f"(a string, a bool, None or an int of magnitude below {self.limits.max_key_int}), so it is not hashed"
        )

    def _set_items(self, pairs: list[Any]) -> None:
        target = self._mutable(self._top(), dict, "sets items on")
        keys = pairs[0::2]
        for key in keys:
            self._check_key(key)
        self._add_items(target, pairs, len(target) + len(keys))
        for i in range(0, len(pairs), 2):
            target[pairs[i]] = pairs[i + 1]

    def _setitem(self) -> None:
        value = self._pop()
        key = self._pop()
        self._set_items([key, value])

    def _setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise self._error("SETITEMS has an odd number of items after its MARK")
        self._set_items(items)

    def _extend(self, items: list[Any]) -> None:
        target = self._mutable(self._top(), list, "appends to")
        self._add_items(target, items, len(target) + len(items))
        target.extend(items)

    def _append(self) -> None:
        self._extend([self._pop()])

    def _appends(self) -> None:
        self._extend(self._pop_mark())

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
        if index not in self.memo and len(self.memo) >= self.limits.max_memo:
            raise self._error(f"the memo grows beyond {self.limits.max_memo} entries (the memo limit)")
        self.memo[index] = self._top()

    def _get(self, index: int) -> None:
        if index not in self.memo:
            raise self._error(f"memo index {index} was never stored (malformed pickle)")
        self._push(self.memo[index])

    # ---- objects: the allow-list --------------------------------------------------------------
    def _resolve(self, module: str, name: str) -> None:
        try:
            value = self.allowed_globals[(module, name)]
        except KeyError:
            shown = short_repr(f"{module[:200]}.{name[:200]}", self.limits.max_repr_chars)[1:-1]
            raise UnsafeModelError(
                self.path,
                f"pickle global {shown} (at byte {self.opcode_start}) is not on the allow-list of "
                f"torch state-dict globals; nothing was imported or called",
            ) from None
        self._push(value)

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
                f"({short_repr(function, 60)}); only allow-listed functions may be called, and nothing was called",
            )
        if not isinstance(args, tuple):
            raise self._error(f"REDUCE arguments for {function.qualname} must be a tuple, got {type(args).__name__}")
        try:
            result = function.function(*args)
        except (PickleValueError, TypeError) as exc:
            raise self._error(f"{function.qualname}: {exc}") from None
        self._push_result(result, 1 + self._depth(args))

    def _push_result(self, result: Any, depth: int) -> None:
        """A value made by an allow-listed function or the storage resolver: as deep as its input."""
        if id(result) in self._depths:  # the input itself, e.g. _rebuild_parameter's tensor
            self._push(result)
        else:
            self._push_new(result, depth)

    def _build(self) -> None:
        state = self._pop()
        target = self._top()
        # torch writes BUILD only for objects with extra state; for a tensor the state carries
        # nothing inference needs. For an OrderedDict (a state dict) a dict state is the object's
        # *attributes*, not items: `model.state_dict()` carries `_metadata` (module versions) this
        # way, and Python's pickle sets it with setattr. Inference needs none of it, so it is
        # dropped (merging it into the items would make `_metadata` look like a tensor name).
        if isinstance(target, TensorRecord) and (state is None or state == {} or state == ()):
            return
        if isinstance(target, dict) and isinstance(state, dict):
            self._seal(state)
            return
        raise self._error(
            f"BUILD with state {type(state).__name__} on a {type(target).__name__} is not supported"
        )

    def _binpersid(self) -> None:
        pid = self._pop()
        if self.persistent_load is None:
            raise self._error("has a persistent id but no storage resolver was given")
        self._seal(pid)
        self._push_result(self.persistent_load(pid), 1 + self._depth(pid))

    # ---- errors -------------------------------------------------------------------------------
    def _error(self, message: str) -> ModelFileError:
        byte = self.data[self.opcode_start] if self.opcode_start < len(self.data) else 0
        return ModelFileError(self.path, f"pickle opcode {opcode_name(byte)} at byte {self.opcode_start}: {message}")


def unpickle(
    data: bytes,
    path: str | Path,
    persistent_load: PersistentLoad | None = None,
    allowed_globals: Mapping[tuple[str, str], object] = TORCH_GLOBALS,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """Run the pickle program `data` on our VM and return its result."""
    return Unpickler(data, path, persistent_load, allowed_globals, limits).load()


__all__ = ["HIGHEST_PROTOCOL", "Unpickler", "unpickle"]
