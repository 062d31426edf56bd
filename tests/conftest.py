import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module="numba")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
