"""Named entries of a registry (the modalities', the objectives'): built-in ones named by "module:attribute" and
imported on first use, so a registry module imports none of them; plug-ins added with `register`."""
import importlib


class Entries:
    def __init__(self, builtin: dict, unknown):
        """`builtin`: name -> "module:attribute"; `unknown(name, known names)` -> the exception for a name that is
        neither built in nor registered."""
        self.builtin, self.unknown, self.registered = builtin, unknown, {}

    def register(self, entry):
        """Add an entry (a plug-in outside seqcpc) under its name; returns it."""
        self.registered[entry.name] = entry
        return entry

    def names(self) -> list[str]:
        return list(dict.fromkeys([*self.builtin, *self.registered]))

    def get(self, name: str):
        if name not in self.registered and name in self.builtin:
            module, attr = self.builtin[name].split(":")
            self.registered[name] = getattr(importlib.import_module(module), attr)
        if name not in self.registered:
            raise self.unknown(name, self.names())
        return self.registered[name]
