from tests.governance.conftest import lenient_policy  # noqa: F401
from tests.serving.conftest import client_key, keyed, production, second_version  # noqa: F401
