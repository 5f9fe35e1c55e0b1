"""The domain rules, in plain Python: no Django, no models, no providers' clients (`make lint`
enforces it: .importlinter, "The domain needs no Django"). Callers pass plain values or objects
with the fields a rule reads, so every rule can be tested and reused without a database.

- scaling.py: the scaling decision (target instances from backlog, queue age and bounds);
- scheduling.py: which schedule window is open and the instance bounds it sets;
- health.py: a worker pool's health verdict;
- slo.py, windows.py, histogram.py, evidence.py, dead_letters.py: SLO and error-budget math,
  rollup windows, latency histograms, migration evidence, dead-letter retention risk;
- payloads.py, schemas.py: normalising and validating an ingested event against its class's
  JSON schema, and keeping those schemas safe to evaluate.
"""
