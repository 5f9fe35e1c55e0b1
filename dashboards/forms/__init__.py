"""The screens' forms, one module per screen (or, for expiry.py and datetimes.py, per thing two
screens share). They parse and validate input for the views; every decision stays in the services."""
