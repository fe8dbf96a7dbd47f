"""The catalogue is data: defaults, client additions (quantile included), validation messages."""

import pytest

from sightlines.catalog import catalog, get_sightline
from sightlines.config import ClientConfig
from sightlines.errors import ConfigError

QUANTILE = {"name": "rev_90_p90", "description": "Revenue in 90 days, 90th percentile", "role": "purchases",
            "aggregate": "sum", "field": "order_total", "horizon": 90, "objective": "quantile", "alpha": 0.9,
            "unit": "currency"}


def test_the_default_catalogue():
    names = [s.name for s in catalog()]
    assert names == ["purchase_1", "purchase_7", "purchase_30", "aov_7", "aiv_7", "item_7", "rev_30", "rev_365",
                     "optout_7", "msgs_1", "openrate_7", "click_7", "pv_30"]
    assert get_sightline("aov_7").objective == "gamma" and get_sightline("aov_7").condition == "any"
    assert get_sightline("openrate_7").weight == "count"
    assert get_sightline("rev_365").objective == "tweedie"


def test_a_client_adds_disables_and_redefines():
    cfg = ClientConfig.from_dict({"sightlines": [QUANTILE, dict(get_sightline("pv_30").to_dict(), horizon=14)],
                                  "disabled_sightlines": ["msgs_1"]})
    cat = {s.name: s for s in catalog(cfg)}
    assert "msgs_1" not in cat and cat["rev_90_p90"].alpha == 0.9 and cat["pv_30"].horizon == 14


@pytest.mark.parametrize("change,message", [
    ({"objective": "quantile", "alpha": None}, r"objective 'quantile' needs 'alpha' between 0 and 1"),
    ({"aggregate": "median"}, r"aggregate is 'median'; expected one of"),
    ({"horizon": 0}, r"horizon is 0; expected whole days between 1 and 730"),
    ({"name": "Bad Name"}, r"the name must be 1-40 lowercase letters"),
    ({"role": "optout", "aggregate": "sum"}, r"the optout role happens at most once"),
    ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
])
def test_bad_entries_say_what_to_fix(change, message):
    with pytest.raises(ConfigError, match=message):
        catalog(ClientConfig.from_dict({"sightlines": [{**QUANTILE, **change}]}))


def test_unknown_disabled_sightline():
    with pytest.raises(ConfigError, match=r"disabled_sightlines names unknown sightline\(s\) \['nope'\]"):
        catalog(ClientConfig.from_dict({"disabled_sightlines": ["nope"]}))
