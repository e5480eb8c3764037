"""The README's example code runs as written (the README must tell the truth)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    # the example's likelihood agrees with the exact data density up to the documented gaps
    ll, mix, x0 = namespace["ll"], namespace["mix"], namespace["x0"]
    assert abs(float((ll.log_prob - mix.log_prob(x0[:8])).mean())) < 0.05
    assert namespace["xs"].shape == (1000, 2)
