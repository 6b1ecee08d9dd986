"""bench/run.py's harness, one job per module.

places (paths, services) <- data (MariaDB, Redis) <- peers, scenarios <- servers, sampling,
wrk <- measure (one run of one peer) <- report <- main (the command line). scaling is scenario
7's in-process measurement, which main appends to the report.
"""
