"""limitjump: predict a missed repayment after a credit-limit jump, and say why.

One module per pipeline stage (simulate, features, split, train, evaluate, score) of pure
functions over DataFrames and arrays; ``cli`` wires them to the DVC stages; ``config`` reads
params.yaml; ``contract`` describes every table.
"""
