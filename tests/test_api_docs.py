"""The documentation site, guides and the API reference generated from the docstrings, builds without a warning.

``mkdocs build --strict`` turns every warning into a failure: a broken link or anchor in ``docs/``, a page left
out of the navigation, and griffe's complaints about docstrings (a documented parameter that is not in the
signature, a section that does not parse as numpy style).  Takes about 3 s on 2 cores.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr}\n{proc.stdout}"

    overview = (site / "api" / "index.html").read_text()
    for name in ("infer", "DICPosterior", "read_spike_trains", "simulate"):
        assert name in overview, f"the API overview does not mention {name}"
    pipeline = (site / "api" / "pipeline" / "index.html").read_text()
    assert 'id="dicsbi.pipeline.infer"' in pipeline, "dicsbi.pipeline.infer is not documented"
    posterior = (site / "api" / "posterior" / "index.html").read_text()
    assert 'id="dicsbi.posterior.artifact.DICPosterior"' in posterior, "DICPosterior is not documented"
    assert 'id="dicsbi.posterior.artifact.DICPosterior.sample"' in posterior, "DICPosterior.sample is not documented"
    assert (site / "index.html").is_file(), "the site has no home page (docs/index.md)"
    for guide in ("quickstart", "tutorial", "architecture", "posterior"):
        assert (site / guide / "index.html").is_file(), f"the guide {guide}.md was not built"
