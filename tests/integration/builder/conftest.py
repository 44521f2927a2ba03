from tests.integration.library.support import stack  # noqa: F401  (the module-wide services fixture)
