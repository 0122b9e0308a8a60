"""socialstream's pure core: the input contract, state, features, models and policy.

Nothing here imports Faust or aiokafka, so the same code runs in a worker, in replay and in tests.
"""
