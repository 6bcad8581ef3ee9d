"""Plumbing every command shares: the Hydra resolvers, the loggers, the DDP launcher, the device pool, the sweep
summary, redaction, config checks, atomic files and the run record. Importing this package imports nothing heavy:
each module names its own dependencies (the report reads the run record without torch)."""
