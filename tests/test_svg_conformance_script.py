"""scripts/svg_conformance.py on a two-test miniature suite (the real suite is not in the repository)."""
import json

import numpy as np
import svg_conformance
from PIL import Image

SQUARE = ('<svg id="svg1" viewBox="0 0 200 200" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
          '<rect id="rect1" x="50" y="50" width="100" height="100" fill="green"/></svg>')


def _reference(path, offset: int):
    """A transparent 300x300 PNG with the green square at 75..225 (+ offset), like resvg's references."""
    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[75 + offset:225 + offset, 75 + offset:225 + offset] = (0, 128, 0, 255)
    Image.fromarray(rgba, "RGBA").save(path)


def test_scores_matching_and_wrong_references(tmp_path):
    folder = tmp_path / "shapes" / "rect"
    folder.mkdir(parents=True)
    for name, offset, title in (("right", 0, "Right"), ("shifted", 40, "Shifted"), ("undefined", 40, "X (UB)")):
        (folder / f"{name}.svg").write_text(SQUARE.format(title=title))
        _reference(folder / f"{name}.png", offset)
    out = tmp_path / "result.json"
    notes = tmp_path / "notes.md"
    assert svg_conformance.main([str(tmp_path), "--categories", "shapes/rect", "--out", str(out),
                                 "--notes", str(notes)]) == 0
    report = json.loads(out.read_text())
    tests = {t["test"]: t for t in report["tests"]}
    assert tests["shapes/rect/right"]["passed"] and tests["shapes/rect/right"]["psnr"] > 40
    assert not tests["shapes/rect/shifted"]["passed"] and tests["shapes/rect/shifted"]["psnr"] < 20
    assert not tests["shapes/rect/undefined"]["scored"]
    assert report["summary"]["categories"]["shapes/rect"] == {
        "tests": 3, "scored": 2, "passed": 1, "failed_with_warning": 0, "not_scored": 1, "pass_rate": 0.5}
    assert "shapes/rect/shifted" in notes.read_text() and "shapes/rect/right" not in notes.read_text()
