"""Datum conversions (media/datum.py) against published implementations' test vectors.

Where the vectors come from (facts only; the code under test is our own):

- EVILTRANSFORM: github.com/googollee/eviltransform, python/test.py `TESTS` (wgs, gcj pairs for
  Shanghai, Shenzhen, Beijing; its test asserts wgs2gcj to 1e-6 degrees and gcj2wgs_exact to
  0.5 m). Its `TESTS_bd` pairs are not used: they are 10-40 m from the BD-09 formula every
  implementation (eviltransform's own included) computes, so they test nothing we can meet.
- COORDTRANSFORM: github.com/wandergis/coordtransform, test/app.js (116.404, 39.915 through
  bd09togcj02, gcj02tobd09 and wgs84togcj02; its gcj02towgs84 is a one-step approximation, not
  used).
- GCOORD: github.com/hujiulong/gcoord, test/fixtures/china-cities.json (WGS84, GCJ02 and BD09 of
  Chinese cities, 7 decimals) and test/unit/crs/BD09.spec.ts (BD09 (123, 45) to GCJ02 and
  WGS84). The fixture's WGS84/GCJ02 pairs sit about 0.7 m from the canonical formula (gcoord's
  own test allows 1e-4 degrees, about 10 m), so those pairs are held to 1 m here; its BD09/GCJ02
  pairs are held to 0.5 m like the rest.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import datum
from media.checks import haversine_m
from media.datum import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    normalise_datum,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

EVILTRANSFORM = [
    # wgs lat, wgs lon, gcj lat, gcj lon
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # beijing
]

# coordtransform's test/app.js, as (lat, lon): the input point and the published outputs.
COORDTRANSFORM_IN = (39.915, 116.404)
COORDTRANSFORM = {
    "bd09_to_gcj02": (39.90865673957631, 116.39762729119315),
    "gcj02_to_bd09": (39.92133699351021, 116.41036949371029),
    "wgs84_to_gcj02": (39.91640428150164, 116.41024449916938),
}

GCOORD_CITIES = [
    # name, WGS84 (lon, lat), GCJ02 (lon, lat), BD09 (lon, lat): gcoord's order, lon first
    ("驻马店市", (114.0164322, 33.0133556), (114.022306, 33.0115324), (114.0287781, 33.0176697)),
    ("邵阳市", (111.4622119, 27.242124), (111.4677938, 27.2388981), (111.4742271, 27.2451662)),
    ("邢台市", (114.498916, 37.0700925), (114.5048503, 37.0705911), (114.5113116, 37.0766797)),
    ("荆门市", (112.1935849, 31.0376011), (112.1994301, 31.0354012), (112.2058231, 31.0417338)),
    ("那曲地区", (92.0499619, 31.4784436), (92.0512438, 31.4762063), (92.0576832, 31.4824421)),
    ("莱芜市", (117.6708588, 36.2138283), (117.6767323, 36.2138184), (117.6832831, 36.2195866)),
    (
        "凉山彝族自治州",
        (102.2658401, 27.8850446),
        (102.2673386, 27.8816151),
        (102.2738428, 27.8876621),
    ),
    ("梧州市", (111.2740147, 23.4795593), (111.2791187, 23.4769675), (111.2856358, 23.4828109)),
    (
        "楚雄彝族自治州",
        (101.5265949, 25.048566),
        (101.5280737, 25.0455363),
        (101.5344863, 25.0518094),
    ),
    ("辽阳市", (123.2312099, 41.2651725), (123.2369518, 41.2672464), (123.2433178, 41.2736074)),
    ("毕节市", (105.2884121, 27.2873271), (105.2916458, 27.2839591), (105.2982343, 27.2896767)),
    ("河池市", (108.0810066, 24.695685), (108.0852626, 24.6929343), (108.0917615, 24.6988503)),
    ("锡林郭勒盟", (116.0414035, 43.9312805), (116.0482308, 43.9334573), (116.0546232, 43.9397782)),
    ("酒泉市", (98.4937175, 39.7319946), (98.4943595, 39.7328234), (98.5008441, 39.7388949)),
    ("钦州市", (108.6503952, 21.9828281), (108.6541485, 21.9799392), (108.6607283, 21.9856319)),
]
GCOORD_BD09_SPEC = {  # BD09 (lon 123, lat 45) to ...
    "gcj02": (122.99363304, 44.99365430),
    "wgs84": (122.98762210, 44.99171540),
}

HALF_METRE = 0.5


def close(a, b, metres=HALF_METRE) -> bool:
    return haversine_m(a, b) <= metres


# -- published vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("wlat,wlon,glat,glon", EVILTRANSFORM)
def test_eviltransform_forward_to_a_millionth_of_a_degree(wlat, wlon, glat, glon):
    lat, lon = wgs84_to_gcj02(wlat, wlon)
    assert abs(lat - glat) < 1e-6 and abs(lon - glon) < 1e-6


@pytest.mark.parametrize("wlat,wlon,glat,glon", EVILTRANSFORM)
def test_eviltransform_inverse_within_half_a_metre(wlat, wlon, glat, glon):
    assert close(gcj02_to_wgs84(glat, glon), (wlat, wlon))


@pytest.mark.parametrize("name", sorted(COORDTRANSFORM))
def test_coordtransform_vectors(name):
    got = getattr(datum, name)(*COORDTRANSFORM_IN)
    assert close(got, COORDTRANSFORM[name], 0.01)


@pytest.mark.parametrize("name,wgs,gcj,bd", GCOORD_CITIES, ids=[c[0] for c in GCOORD_CITIES])
def test_gcoord_cities(name, wgs, gcj, bd):
    wgs, gcj, bd = wgs[::-1], gcj[::-1], bd[::-1]  # to (lat, lon)
    assert close(bd09_to_gcj02(*bd), gcj)
    assert close(gcj02_to_bd09(*gcj), bd)
    # The fixture's own WGS84/GCJ02 pairs: 1 m (see the module docstring).
    assert close(wgs84_to_gcj02(*wgs), gcj, 1.0)
    assert close(gcj02_to_wgs84(*gcj), wgs, 1.0)
    assert close(bd09_to_wgs84(*bd), wgs, 1.0)
    # Our inverse undoes our forward to half a metre, BD-09 included.
    assert close(gcj02_to_wgs84(*wgs84_to_gcj02(*wgs)), wgs)
    assert close(bd09_to_wgs84(*wgs84_to_bd09(*wgs)), wgs)


def test_gcoord_bd09_spec():
    assert close(bd09_to_gcj02(45, 123), GCOORD_BD09_SPEC["gcj02"][::-1])
    assert close(bd09_to_wgs84(45, 123), GCOORD_BD09_SPEC["wgs84"][::-1])


def test_offsets_are_the_hundreds_of_metres_the_issue_is_about():
    for _name, wgs, gcj, _bd in GCOORD_CITIES:
        assert 50 < haversine_m(wgs[::-1], gcj[::-1]) < 800


# -- the out-of-China rule: its edges ----------------------------------------------------------

EDGES = [
    # (lat, lon, inside?) on and just past each edge of 0.8293..55.8271 N, 72.004..137.8347 E
    (30.0, 72.004, True),
    (30.0, 72.0039, False),
    (30.0, 137.8347, True),
    (30.0, 137.8348, False),
    (0.8293, 100.0, True),
    (0.8292, 100.0, False),
    (55.8271, 100.0, True),
    (55.8272, 100.0, False),
    (0.0, 0.0, False),
    (-30.0, 110.0, False),
    (30.0, -110.0, False),
]


@pytest.mark.parametrize("lat,lon,inside", EDGES)
def test_out_of_china_edges(lat, lon, inside):
    assert out_of_china(lat, lon) is (not inside)
    moved = wgs84_to_gcj02(lat, lon) != (lat, lon)
    assert moved is inside
    assert (gcj02_to_wgs84(lat, lon) != (lat, lon)) is inside


def test_outside_china_is_identity_for_wgs_and_gcj():
    london = (51.5072, -0.1276)
    assert wgs84_to_gcj02(*london) == london
    assert gcj02_to_wgs84(*london) == london
    assert gcj02_to_wgs84(0.0, 0.0) == (0.0, 0.0)
    assert to_wgs84(*london, "gcj02") == london


# -- properties ---------------------------------------------------------------------------------

# China's bounding box less 0.02 degrees (2 km) at each edge, where the forward transform is
# not one-to-one (see media/datum.py; no Chinese land is within 100 km of the edges).
EDGE = 0.02
china = st.tuples(
    st.floats(min_value=datum.LAT_MIN + EDGE, max_value=datum.LAT_MAX - EDGE),
    st.floats(min_value=datum.LON_MIN + EDGE, max_value=datum.LON_MAX - EDGE),
)


@settings(max_examples=300, deadline=None)
@given(china)
def test_gcj_offset_is_hundreds_of_metres_inside_the_box(point):
    assert 1 < haversine_m(point, wgs84_to_gcj02(*point)) < 1200


@settings(max_examples=300, deadline=None)
@given(china)
def test_round_trip_wgs_gcj_wgs_within_half_a_metre(point):
    assert close(gcj02_to_wgs84(*wgs84_to_gcj02(*point)), point)


@settings(max_examples=300, deadline=None)
@given(china)
def test_round_trip_wgs_bd_wgs_within_half_a_metre(point):
    back = bd09_to_wgs84(*wgs84_to_bd09(*point))
    assert close(back, point)


@settings(max_examples=200, deadline=None)
@given(china, st.sampled_from(datum.DATUMS))
def test_to_and_from_wgs84_are_inverse(point, name):
    assert close(to_wgs84(*from_wgs84(*point, name), name), point)


# -- datums by name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("wgs84", "wgs84"),
        ("WGS-84", "wgs84"),
        ("WGS 84", "wgs84"),
        ("ＧＣＪ－０２", "gcj02"),
        ("gcj02", "gcj02"),
        ("高德", "gcj02"),
        ("腾讯地图", "gcj02"),
        ("火星坐标", "gcj02"),
        ("BD-09", "bd09"),
        ("百度", "bd09"),
        ("CGCS2000", "cgcs2000"),
        ("天地图", "cgcs2000"),
        ("", None),
        ("utm", None),
        ("gcj03", None),
        (None, None),
    ],
)
def test_normalise_datum(text, expected):
    assert normalise_datum(text) == expected


def test_unknown_datum_is_refused():
    with pytest.raises(ValueError):
        to_wgs84(30, 110, "gcj2")
    with pytest.raises(ValueError):
        from_wgs84(30, 110, "")


def test_cgcs2000_is_wgs84_for_our_purposes():
    assert to_wgs84(24.33, 109.42, "cgcs2000") == (24.33, 109.42)
    assert not math.isclose(to_wgs84(24.33, 109.42, "gcj02")[0], 24.33, abs_tol=1e-4)
