"""The pickle opcodes our virtual machine understands: exactly the ones torch.save emits.

A pickle is a little program for a stack machine: each opcode is one byte, some followed by an
argument. Disassembling real files (`pickletools.dis`) from torch 2.x with protocol 2 (the default)
and protocols 4/5 shows the set below; older torch (Meta's Llama checkpoints) writes a subset of it.
Every other opcode (including the ones that let a pickle call arbitrary code, like INST and OBJ)
is refused before anything runs.
"""

from __future__ import annotations

from enum import IntEnum


class Op(IntEnum):
    # protocol and framing
    PROTO = 0x80  # 1-byte protocol version
    FRAME = 0x95  # 8-byte frame length: a hint for buffered readers, nothing to execute
    STOP = 0x2E  # "." end of the pickle: the top of the stack is the result
    # containers
    EMPTY_DICT = 0x7D  # "}"
    EMPTY_LIST = 0x5D  # "]"
    EMPTY_TUPLE = 0x29  # ")"
    MARK = 0x28  # "(" remember the stack height; TUPLE/SETITEMS/APPENDS take what came after
    TUPLE = 0x74  # "t"
    TUPLE1 = 0x85
    TUPLE2 = 0x86
    TUPLE3 = 0x87
    SETITEM = 0x73  # "s"
    SETITEMS = 0x75  # "u"
    APPEND = 0x61  # "a"
    APPENDS = 0x65  # "e"
    # scalars
    BINUNICODE = 0x58  # "X" 4-byte length + UTF-8
    SHORT_BINUNICODE = 0x8C  # 1-byte length + UTF-8
    BININT = 0x4A  # "J" signed 4-byte int
    BININT1 = 0x4B  # "K" unsigned 1-byte int
    BININT2 = 0x4D  # "M" unsigned 2-byte int
    LONG1 = 0x8A  # 1-byte length + little-endian two's-complement int
    BINFLOAT = 0x47  # "G" big-endian float64
    NEWFALSE = 0x89
    NEWTRUE = 0x88
    NONE = 0x4E  # "N"
    # memo: values saved by index so a later BINGET can reuse them
    BINPUT = 0x71  # "q" 1-byte index
    LONG_BINPUT = 0x72  # "r" 4-byte index
    MEMOIZE = 0x94  # index = current memo size
    BINGET = 0x68  # "h"
    LONG_BINGET = 0x6A  # "j"
    # objects: resolved through the allow-list only
    GLOBAL = 0x63  # "c" "module\nname\n"
    STACK_GLOBAL = 0x93  # module and name strings from the stack
    REDUCE = 0x52  # "R" callable(*args)
    BUILD = 0x62  # "b" obj.__setstate__(state)
    BINPERSID = 0x51  # "Q" persistent id: torch's reference to a storage outside the pickle


# Byte value -> opcode, for the dispatch loop.
ALLOWED: dict[int, Op] = {op.value: op for op in Op}

# Names of well-known opcodes we refuse, so the error can say what the file asked for.
REFUSED_NAMES: dict[int, str] = {
    0x69: "INST",
    0x6F: "OBJ",
    0x81: "NEWOBJ",
    0x92: "NEWOBJ_EX",
    0x50: "PERSID",
    0x49: "INT",
    0x4C: "LONG",
    0x8B: "LONG4",
    0x46: "FLOAT",
    0x53: "STRING",
    0x54: "BINSTRING",
    0x55: "SHORT_BINSTRING",
    0x56: "UNICODE",
    0x8D: "BINUNICODE8",
    0x42: "BINBYTES",
    0x43: "SHORT_BINBYTES",
    0x8E: "BINBYTES8",
    0x96: "BYTEARRAY8",
    0x97: "NEXT_BUFFER",
    0x98: "READONLY_BUFFER",
    0x8F: "EMPTY_SET",
    0x90: "ADDITEMS",
    0x91: "FROZENSET",
    0x64: "DICT",
    0x6C: "LIST",
    0x67: "GET",
    0x70: "PUT",
    0x30: "POP",
    0x31: "POP_MARK",
    0x32: "DUP",
    0x82: "EXT1",
    0x83: "EXT2",
    0x84: "EXT4",
}


def opcode_name(byte: int) -> str:
    """'REDUCE', 'INST', or 'unknown' for a byte that is no opcode at all."""
    if byte in ALLOWED:
        return ALLOWED[byte].name
    return REFUSED_NAMES.get(byte, "unknown")


__all__ = ["ALLOWED", "Op", "REFUSED_NAMES", "opcode_name"]
