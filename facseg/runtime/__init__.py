"""Plumbing every command shares, the lowest layer (it imports no other stage): the Hydra resolvers, the loggers,
the DDP launcher, the device pool, the sweep summary, redaction, atomic files, spooled arrays, memory, provenance and
the run record. Importing this package imports nothing heavy: each module names its own dependencies (the report
reads the run record without torch)."""
