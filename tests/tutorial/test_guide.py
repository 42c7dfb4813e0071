"""The students' guide (docs/tutorial.md) points only at files that exist, and the README leads to it."""

import re

from tests.harness import ROOT

GUIDE = ROOT / "docs" / "tutorial.md"


def test_every_link_of_the_guide_is_a_file_of_the_checkout():
    # given
    links = re.findall(r"\]\(([^)#]+)\)", GUIDE.read_text())
    # then
    assert len(links) > 40
    assert [link for link in links if not (GUIDE.parent / link).exists()] == []


def test_the_readme_lists_make_tutorial_and_links_the_guide():
    readme = (ROOT / "README.md").read_text()
    assert "make tutorial" in readme
    assert "(docs/tutorial.md)" in readme
