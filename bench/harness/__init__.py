"""bench/run.py's harness, one job per module.

Each imports only modules before it in this list (no cycles): places (paths, services),
data (MariaDB, Redis), peers, scenarios, servers (processes), sampling (worker RSS), wrk,
measure (one run of one peer), report, flask_venv, scaling (scenario 7 in process), main
(the command line).
"""
