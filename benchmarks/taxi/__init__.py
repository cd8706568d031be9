"""The taxi HHI experiment's parts (its command line: benchmarks/taxi_hhi.py).

    common      constants (the query, modes, phases, engines, tolerance), BenchError, log
    data        generated data per size, the catalogs' files, warm catalogs, row-count parsing
    processes   every process group the experiment starts, and stopping them (strays too)
    servers     Spark Connect servers and party agents, started before timing (warm phase)
    plaintext   the insecure baseline: the same SQL over the union of all parties' files
    runs        one timed run of each mode (plaintext, sqlmpc, all-secure), cold or warm
    report      medians per measurement, the agreement check, the table and the plot
"""
