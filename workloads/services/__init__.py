"""Plain functions that change state: no HTTP, no Celery. Views, API endpoints, commands and
tasks all call these, so a button and an API call share one code path."""
