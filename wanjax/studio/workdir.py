"""The studio's temporary files: one folder per app, a subfolder per generation or brush download, the oldest ones
removed beyond a limit, everything removed when the app closes (or the process exits), so a studio left running
keeps a bounded amount on disk."""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
from pathlib import Path


class Workdir:
    """root/KIND/NNNNNN folders, at most `keep` of each kind."""

    def __init__(self, keep: int = 8):
        self.root = Path(tempfile.mkdtemp(prefix="wanjax-studio-"))
        self.keep = keep
        self._count = itertools.count()
        self._lock = threading.Lock()
        atexit.register(self.close)

    def new(self, kind: str) -> Path:
        """A new empty folder for `kind` ("video", "brush"); the oldest of that kind beyond `keep` are removed."""
        with self._lock:
            folder = self.root / kind / f"{next(self._count):06d}"
            folder.mkdir(parents=True)
            for old in sorted((self.root / kind).iterdir())[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
