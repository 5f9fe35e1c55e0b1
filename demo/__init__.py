"""The demo: what `make run` shows a newcomer, kept apart from the product (an app of its own,
with no tables). fleet.py seeds the demo classes, migration.py the migration in progress,
traffic.py shapes the events `manage.py generate_traffic` posts, handlers.py is the workers'
handler module (WORKER_HANDLER_MODULES) and legacy.py the plain Celery app the migration demo moves
away from. The product never imports it (.importlinter); it uses the product's services as any
client would. Nothing is imported here: `celery -A demo.legacy` loads this package without Django.
"""
