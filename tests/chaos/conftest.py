"""The chaos package gets its own stack (its own database, vhost and service processes): the e2e
fixtures, imported rather than copied, so a crash here never disturbs the saga tests' stack."""
from tests.e2e.conftest import base, models_s3, settings, stack

# package-scoped fixtures, registered again for this package (the stack needs the models service's S3 proxy)
__all__ = ["base", "models_s3", "settings", "stack"]
