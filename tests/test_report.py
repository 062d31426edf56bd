"""The one page template and figure helper of every report."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after the test's backend choice

from dicsbi.report.page import CSS, bullet_list, html_page, save_figures, table  # noqa: E402 - as above


def test_page_escapes_user_text_and_carries_the_stylesheet():
    page = html_page("a <b> & c", table([("x<y", 1)], header=["name", "value"], row_header=True)
                     + bullet_list(["<script>"]))
    assert page.startswith("<!DOCTYPE html>") and CSS in page
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and "<th>x&lt;y</th><td>1</td>" in page
    assert "<li>&lt;script&gt;</li>" in page and "<script>" not in page
    assert bullet_list([]) == ""


def test_save_figures_writes_files_and_embeds_them(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig2, _ = plt.subplots()
    out = save_figures({"first_one": fig, "second": fig2}, tmp_path / "figures", prefix="rec_")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["rec_first_one.png", "rec_second.png"]
    assert out.count("data:image/png;base64,") == 2 and "<h3>first one</h3>" in out
    assert (tmp_path / "figures" / "rec_second.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()  # every figure closed
