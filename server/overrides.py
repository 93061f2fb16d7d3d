"""Settings an admin changed on /desk/admin/settings, laid over the config.

Kept per county, keyed by the county's code (the first 6 digits of its villages' 12-digit
statistical codes; '' for the whole deployment). A county's own value wins, then the
deployment's, then the config. Readers pass `effective_config(...)` where they would pass the
config: the evidence checks (per submission, by its village's county), the tidiness target of
the indicators pages (by the viewer's county) and the county class that sets the toilet targets
(`villages_with_class`). No Flask context needed, so ingest workers use it too.
"""

from collections import ChainMap


def county_code(village_code: str) -> str:
    """The county of a village: the first 6 digits of its code (GB/T 2260)."""
    return village_code[:6]


def effective_config(config, store, county: str = "") -> ChainMap:
    """`config` with the admin pages' settings of `county` (else the deployment's) over it."""
    stored = {k: v for k, v in store.admin_settings(county or "").items() if v is not None}
    return ChainMap(stored, config)


def viewer_county(villages) -> str:
    """The one county the viewer's villages are in, or '' (several counties, or none)."""
    counties = {county_code(code) for code in villages}
    return counties.pop() if len(counties) == 1 else ""


def villages_with_class(store, config) -> list[dict]:
    """Every village, with the county class an admin set for its county (else as registered):
    the class decides the toilet targets the indicators judge against."""
    classes = {}
    out = []
    for v in store.villages():
        county = county_code(v["code"])
        if county not in classes:
            classes[county] = effective_config(config, store, county).get("COUNTY_CLASS")
        out.append({**v, "county_class": classes[county]} if classes[county] else v)
    return out
