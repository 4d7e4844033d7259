import os
import subprocess
import sys

import numpy as np

from conftest import REPO, draw_toon
from toonmatte.imaging.foreground import estimate_foreground

NO_LOCATOR = '''
class NoLocator:
    """A numba cache locator that never finds a writable place, like a read-only install with no home."""

    @classmethod
    def from_function(cls, function, source_path):
        return None
'''

SCRIPT = '''
import sys
import numpy as np
sys.path.insert(0, "tests")
from conftest import draw_toon
from toonmatte.imaging.foreground import estimate_foreground
rgb, alpha = draw_toon(48, 40, seed=3)
sys.stdout.buffer.write(estimate_foreground(rgb, alpha).tobytes())
'''


def test_compiles_without_a_writable_cache(tmp_path):
    (tmp_path / "nolocator.py").write_text(NO_LOCATOR)
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES="nolocator.NoLocator",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    rgb, alpha = draw_toon(48, 40, seed=3)
    expected = estimate_foreground(rgb, alpha)
    assert np.frombuffer(result.stdout, np.uint8).reshape(expected.shape).tolist() == expected.tolist()
