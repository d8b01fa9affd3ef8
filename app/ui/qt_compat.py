"""A guard against reference-count bugs in PySide6 6.12: `SignalInstance.emit` and
`QPlainTextEdit.setExtraSelections` (among others) give back singletons without their reference.

Every `signal.emit(...)` made from Python hands back `True` without the reference it owes
(measured on PySide6 6.12.0 with CPython 3.11: `sys.getrefcount(True)` drops by one per emit,
with or without connected slots). Under Python 3.12+ `True` is immortal and nothing happens;
under 3.10 and 3.11 the count reaches zero after a few thousand emits, i.e. one long
generation, and the interpreter aborts ("bool_dealloc: deallocating True or False").

`None` goes the same way: `setExtraSelections` drops one reference to it per call, and the
token colours repaint it many times a second while the model writes (measured: -500 per 500
calls, -30 per theme change), so a long session would end in "none_dealloc".

The guard gives `True`, `False` and `None` 2**40 extra references, more than any session can
lose.
It touches nothing else, and only on CPython before 3.12 without Py_TRACE_REFS (where the
count is the first field of every object).
"""

from __future__ import annotations

import ctypes
import sys

EXTRA_REFERENCES = 1 << 40


def pin_booleans() -> bool:
    """Make True, False and None unkillable by refcount bugs; returns whether anything was
    done."""
    if (sys.implementation.name != "cpython" or sys.version_info >= (3, 12)
            or hasattr(sys, "getobjects")):  # getobjects: a Py_TRACE_REFS build, other layout
        return False
    for value in (True, False, None):
        count = ctypes.c_ssize_t.from_address(id(value))
        if count.value < EXTRA_REFERENCES:
            count.value += EXTRA_REFERENCES
    return True


pin_booleans()
