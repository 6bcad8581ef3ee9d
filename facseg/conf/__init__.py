"""The configs, a package so that Hydra finds them installed (pkg://facseg.conf) as well as in a checkout."""
