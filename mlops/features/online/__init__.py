"""Online features: the stores serving reads at request time, materialization into them,
and request-time evaluation of the same FeaturePlan (DESIGN §2, ``features/online``).

Nothing here imports :mod:`mlops.serving`: serving builds on these modules, never the
other way round.
"""
