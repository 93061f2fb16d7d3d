"""The position plot: a pure function from points to SVG text."""

import math
import re
import xml.etree.ElementTree as ET

import pytest

from server.plot import Point, distance_m, format_m, nice_length, position_plot, valid

SVG = "{http://www.w3.org/2000/svg}"
TOILET = (24.763623, 109.294765)


def north_of(point, metres):
    return point[0] + metres / 111_195.0, point[1]


def east_of(point, metres):
    return point[0], point[1] + metres / (111_195.0 * math.cos(math.radians(point[0])))


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML or this raises


def marker_xy(root, kind):
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == f"point {kind}")
    shape = list(group)[0]
    if shape.tag == f"{SVG}rect":
        return float(shape.get("x")) + 7, float(shape.get("y")) + 7
    if shape.tag == f"{SVG}circle":
        return float(shape.get("cx")), float(shape.get("cy"))
    xs, ys = zip(*(map(float, p.split(",")) for p in shape.get("points").split()), strict=True)
    return sum(xs) / len(xs), sum(ys) / len(ys)


def scale_bar(root):
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "scale")
    path = group.find(f"{SVG}path").get("d")
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path)]
    x0, x1 = numbers[0], numbers[3]
    return x1 - x0, group.find(f"{SVG}text").text


def test_distance_m_is_metres_on_the_ground():
    assert distance_m(TOILET, TOILET) == 0
    assert distance_m(TOILET, north_of(TOILET, 100)) == pytest.approx(100, abs=0.5)
    assert distance_m(TOILET, east_of(TOILET, 250)) == pytest.approx(250, abs=1)


@pytest.mark.parametrize(
    "target, nice", [(0.3, 1), (1, 1), (3, 2), (7.9, 5), (10, 10), (49, 20), (120, 100), (999, 500)]
)
def test_scale_bar_lengths_are_round(target, nice):
    assert nice_length(target) == nice


def test_format_m():
    assert format_m(35.4) == "35 米"
    assert format_m(1000) == "1 公里"
    assert format_m(1520) == "1.5 公里"


def test_valid_positions():
    assert valid(*TOILET)
    assert not valid(0, 0)
    assert not valid(None, 109.3)
    assert not valid(91, 0)
    assert not valid(float("nan"), 1)


def test_plot_places_points_by_direction_and_distance_with_a_true_scale_bar():
    exif = north_of(TOILET, 300)
    phone = east_of(TOILET, 150)
    svg = position_plot(
        [
            Point("facility", *TOILET, "设施"),
            Point("exif", *exif, "EXIF"),
            Point("phone", *phone, "手机", accuracy_m=15),
        ]
    )
    root = parse(svg)
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 320 220"
    fx, fy = marker_xy(root, "facility")
    ex, ey = marker_xy(root, "exif")
    px, py = marker_xy(root, "phone")
    assert ey < fy and ex == pytest.approx(fx, abs=0.2)  # north is up
    assert px > fx and py == pytest.approx(fy, abs=0.2)  # east is right
    px_per_m = (fy - ey) / 300
    assert (px - fx) / 150 == pytest.approx(px_per_m, rel=0.01)  # one scale both ways
    bar_px, bar_label = scale_bar(root)
    metres = float(bar_label.split()[0]) * (1000 if "公里" in bar_label else 1)
    assert bar_px / metres == pytest.approx(px_per_m, rel=0.01)  # the bar tells the truth
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "300 米" in labels and "150 米" in labels  # distances on the lines
    accuracy = next(c for c in root.iter(f"{SVG}circle") if c.get("class") == "accuracy")
    assert float(accuracy.get("r")) == pytest.approx(15 * px_per_m, abs=0.15)
    for x, y in ((fx, fy), (ex, ey), (px, py)):
        assert 0 < x < 320 and 0 < y < 220  # everything inside the picture


def test_a_point_on_top_of_the_facility_gets_no_line_label_but_both_stay_visible():
    root = parse(
        position_plot(
            [
                Point("facility", *TOILET, "设施"),
                Point("exif", *north_of(TOILET, 2), "EXIF"),
                Point("phone", *north_of(TOILET, 400), "手机"),
            ]
        )
    )
    distances = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "distance"]
    assert distances == ["400 米"]
    kinds = [g.get("class") for g in root.iter(f"{SVG}g") if "point" in (g.get("class") or "")]
    assert kinds[-1] == "point facility"  # drawn last: an open square over the others
    label_y = {
        t.text: float(t.get("y")) for t in root.iter(f"{SVG}text") if t.text in ("设施", "EXIF")
    }
    assert abs(label_y["设施"] - label_y["EXIF"]) >= 13  # stacked, not on top of each other


def test_far_points_still_fit_and_use_kilometres():
    far = north_of(TOILET, 5_000)
    root = parse(position_plot([Point("facility", *TOILET), Point("exif", *far)]))
    _, ey = marker_xy(root, "exif")
    assert 0 < ey < 220
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "5 公里" in labels
    assert "公里" in scale_bar(root)[1]


def test_one_point_or_coincident_points_do_not_divide_by_zero():
    root = parse(position_plot([Point("facility", *TOILET), Point("exif", *TOILET)]))
    bar_px, label = scale_bar(root)
    assert bar_px > 0 and label.endswith("米")
    parse(position_plot([Point("phone", *TOILET)]))


def test_no_usable_point_says_so():
    svg = position_plot([Point("exif", 0, 0), Point("phone", float("nan"), 1)])
    assert "没有可用的位置信息" in svg
    parse(svg)


def test_labels_are_escaped():
    svg = position_plot([Point("facility", *TOILET, '<script>"&')], title="a<b")
    parse(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_plot_is_deterministic():
    points = [Point("facility", *TOILET), Point("exif", *north_of(TOILET, 42))]
    assert position_plot(points) == position_plot(points)
