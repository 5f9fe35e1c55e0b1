import pytest

from workloads.models import Environment


@pytest.fixture
def prod_and_staging(db) -> dict[str, Environment]:
    """Two environments in their own projects, as `make run` seeds them: prod and staging."""
    return {
        slug: Environment.objects.create(
            slug=slug,
            name=slug.capitalize(),
            projects=[project],
            regions=["us-central1"],
            monitoring_project=project,
        )
        for slug, project in (("prod", "local-project"), ("staging", "local-staging"))
    }
