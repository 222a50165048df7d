"""A user's project folder: its ``conf/`` on Hydra's search path, and ``mlops init``."""
