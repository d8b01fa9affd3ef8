"""The engine's threads give way to the window's.

While the lens scores a long text or GPT-2 writes, the worker thread and onnxruntime's pool (a
thread per core) keep every core busy; on a 2-core laptop the GUI thread, woken by a timer or a
keystroke, then waited for a core: 10-13 ms at a time were measured (2026-12-02, Linux 6.18,
/proc/<tid>/schedstat), and the lens's longest stall was over 30 ms in one run of three. With
the engine's threads at nice 5, in 11 runs the longest was 6-26 ms and the 99th percentile
1.1-3.1 ms instead of 3.5-4.0, the text scored as fast (10.8-12.3 s against 11.2-12.0).

Only on Linux, where a nice value belongs to one thread and the threads it starts inherit it
(onnxruntime's pool is made by the worker when it loads a model). With the scheduler's
autogroups or a desktop's per-application cgroups (Fedora's and Ubuntu's defaults) a nice value
weighs only our own threads against each other, so other programs take no more of the CPU from
Ghostpen than before. Elsewhere nothing changes: a nice value on macOS is the whole process's
(the window's too), and Windows' thread priorities are not inherited by the pool.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

ENGINE_NICE = 5


def give_way_to_the_window() -> None:
    """Lower the calling thread's priority, and so that of the threads it starts from now on
    (Linux; elsewhere nothing). Never raises: at worst the window stalls a little longer."""
    if not sys.platform.startswith("linux"):
        return
    try:
        # PRIO_PROCESS with 0 is the calling thread on Linux (nice is per thread there).
        os.setpriority(os.PRIO_PROCESS, 0, max(ENGINE_NICE, os.getpriority(os.PRIO_PROCESS, 0)))
    except OSError as error:
        log.debug("could not lower the engine thread's priority: %s", error)
