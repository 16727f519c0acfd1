"""``Table``: the one registry shape kcc uses at every boundary.

Frontends (Keras class -> handler, ONNX op type -> handler), backends (IR op ->
emitter) and the Core ML runtime (layer type -> implementation) are each a
Table filled by a decorator:

    EMITTERS = Table("ONNX emitter")

    @EMITTERS.register("conv")
    def _conv(ctx, node): ...

A second entry for a name is refused (a bug, caught at import). A table may
name a ``loader`` that imports the modules filling it, run on first lookup.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Table(Mapping[str, T], Generic[T]):
    def __init__(self, what: str, loader: Callable[[], None] | None = None):
        self.what = what
        self._entries: dict[str, T] = {}
        self._loader = loader
        self._loaded = loader is None

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: make the function the entry of every name in ``names``."""
        def deco(fn: T) -> T:
            for name in names:
                if name in self._entries:
                    raise AssertionError(f"{self.what} for {name!r} registered twice")
                self._entries[name] = fn
            return fn
        return deco

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def __getitem__(self, name: str) -> T:
        self._load()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self)

    def registered(self, name: str) -> T | None:
        """The entry registered so far under ``name``, without running the loader.

        For checks made while the table is being filled (a declaration refusing a
        duplicate with its own message), where running the loader would re-enter it.
        """
        return self._entries.get(name)
