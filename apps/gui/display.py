"""A virtual X display (Xvfb) to draw the windows on, for the screenshots and the tests.

Xvfb picks a free display number itself (``-displayfd``) and writes it once it
accepts connections, so there is neither a race for a number nor a guess at
how long it takes to start.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from types import TracebackType


class VirtualDisplay:
    """An Xvfb server for as long as the ``with`` block lasts.

    Args:
        size: the screen's width and height in pixels.
        timeout: seconds to wait for Xvfb to come up.

    Raises:
        RuntimeError: Xvfb is not installed, or did not start.
    """

    def __init__(self, size: tuple[int, int] = (1280, 800), timeout: float = 10.0) -> None:
        self.size = size
        self.timeout = timeout
        self.name = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> VirtualDisplay:
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise RuntimeError("Xvfb is not installed (Debian: apt-get install xvfb)")
        read_end, write_end = os.pipe()
        width, height = self.size
        command = [xvfb, "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24"]
        try:
            self._process = subprocess.Popen(
                [*command, "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_end,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(write_end)
        try:
            number = self._read_number(read_end)
        finally:
            os.close(read_end)
        self.name = f":{number}"
        return self

    def _read_number(self, fd: int) -> str:
        deadline = time.monotonic() + self.timeout
        got = b""
        while not got.endswith(b"\n"):
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0))
            chunk = os.read(fd, 64) if readable else b""
            if not chunk:
                self.stop()
                raise RuntimeError(f"Xvfb did not start within {self.timeout:g} s")
            got += chunk
        return got.decode().strip()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> VirtualDisplay:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
