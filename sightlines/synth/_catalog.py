"""The product catalogue of a synthetic brand: SKUs, titles, prices, popularity.

About 300 SKUs in 10 categories, each category with budget, regular and
premium SKUs; popularity is Zipf-like over a random ranking. Items are drawn
per user from (category affinity) x (price-tier preference) x (popularity
within the category and tier).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Catalogue", "build_catalogue", "CATEGORIES", "N_TIERS"]

#: category -> (nouns, typical regular price)
CATEGORIES: dict[str, tuple[tuple[str, ...], float]] = {
    "pants": (("Pant", "Chino", "Trouser", "Jean", "Jogger"), 79.0),
    "shirts": (("Shirt", "Oxford", "Tee", "Polo", "Henley"), 49.0),
    "dresses": (("Dress", "Midi", "Maxi", "Shirtdress"), 99.0),
    "knitwear": (("Sweater", "Cardigan", "Crew", "Turtleneck"), 89.0),
    "outerwear": (("Jacket", "Coat", "Parka", "Vest", "Anorak"), 179.0),
    "shoes": (("Sneaker", "Boot", "Loafer", "Sandal", "Runner"), 119.0),
    "accessories": (("Belt", "Scarf", "Cap", "Wallet", "Beanie"), 35.0),
    "bags": (("Tote", "Backpack", "Duffel", "Crossbody"), 129.0),
    "activewear": (("Legging", "Short", "Hoodie", "Bra", "Tank"), 59.0),
    "home": (("Candle", "Throw", "Mug", "Towel", "Blanket"), 29.0),
}
N_TIERS = 3
TIER_NAMES = ("budget", "regular", "premium")
_TIER_PRICE = (0.6, 1.0, 1.8)
_TIER_ADJ = (
    ("Everyday", "Basic", "Easy", "Weekend"),
    ("Classic", "Slim", "Relaxed", "Stretch", "Organic"),
    ("Merino", "Italian", "Waxed", "Cashmere", "Heritage"),
)
_NAMES = (
    "FULTON", "HARBOR", "ALDER", "BRIGHTON", "CEDAR", "DALTON", "ELM", "FAIRFAX", "GRANT", "HUDSON",
    "IRVING", "JASPER", "KENDAL", "LAUREL", "MONROE", "NEWBURY", "OAKLEY", "PRESCOTT", "QUINCY", "ROWAN",
    "SUTTON", "TAHOE", "UNION", "VERNON", "WESTON", "YARDLEY", "ASHBY", "BEACON", "CARVER", "DEXTER",
    "EASTON", "FENWAY", "GARLAND", "HOLLIS", "INGRAM", "JUNIPER", "KIRBY", "LINDEN", "MERCER", "NORTON",
    "ORCHARD", "PIERCE", "RALEIGH", "SAWYER", "TILDEN", "UPTON", "VALE", "WINSLOW", "AVERY", "BARLOW",
)


@dataclass(frozen=True)
class Catalogue:
    """Arrays describing the SKUs, ordered by (category, tier, popularity rank).

    ``group`` = category * 3 + tier; ``group_start``/``group_cum`` let
    :meth:`draw` pick a SKU within a group by popularity.
    """

    sku: list[str]
    title: list[str]
    category: np.ndarray  # int
    tier: np.ndarray  # int
    price: np.ndarray  # float
    popularity: np.ndarray  # float, sums to 1 over the catalogue
    categories: list[str]
    category_share: np.ndarray  # popularity mass of each category
    group_start: np.ndarray  # (n_groups + 1,)
    group_cum: np.ndarray  # per SKU: group + cumulative share within its group (in (g, g+1])
    group_mean_price: np.ndarray  # (n_categories, n_tiers) popularity-weighted mean price

    def __len__(self) -> int:
        return len(self.sku)

    def draw(self, rng: np.random.Generator, cum_affinity: np.ndarray, cum_tier: np.ndarray) -> np.ndarray:
        """SKU indices, one per row of the per-draw cumulative affinity / tier matrices."""
        n = len(cum_affinity)
        cat = (rng.random(n)[:, None] > cum_affinity[:, :-1]).sum(axis=1)
        tier = (rng.random(n)[:, None] > cum_tier[:, :-1]).sum(axis=1)
        g = cat * N_TIERS + tier
        idx = np.searchsorted(self.group_cum, g + rng.random(n), side="left")
        return np.clip(idx, self.group_start[g], self.group_start[g + 1] - 1)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "sku": self.sku[i],
                "title": self.title[i],
                "category": self.categories[int(self.category[i])],
                "tier": TIER_NAMES[int(self.tier[i])],
                "price": float(self.price[i]),
                "popularity": round(float(self.popularity[i]), 8),
            }
            for i in range(len(self.sku))
        ]


def build_catalogue(rng: np.random.Generator, n_skus: int = 300) -> Catalogue:
    """Draw a catalogue of ``n_skus`` SKUs (at least one per category and tier)."""
    cats = list(CATEGORIES)
    n_cat = len(cats)
    share = rng.dirichlet(np.full(n_cat, 6.0))
    per_cat = np.maximum(np.round(share * n_skus).astype(int), 3 * N_TIERS)
    rows = []
    used: set[str] = set()
    for c, name in enumerate(cats):
        nouns, base = CATEGORIES[name]
        tiers = np.concatenate([np.arange(N_TIERS), rng.choice(N_TIERS, per_cat[c] - N_TIERS, p=[0.3, 0.45, 0.25])])
        for t in tiers:
            for _ in range(100):
                word = _NAMES[rng.integers(len(_NAMES))]
                noun = nouns[rng.integers(len(nouns))]
                sku = f"{word}-{noun.upper()}"
                if sku not in used:
                    break
                sku = f"{sku}-{rng.integers(2, 99)}"
                if sku not in used:
                    break
            used.add(sku)
            adj = _TIER_ADJ[t][rng.integers(len(_TIER_ADJ[t]))]
            title = f"{word.title()} {adj} {noun}"
            price = max(4.0, round(base * _TIER_PRICE[t] * float(np.exp(rng.normal(0, 0.18))))) - 0.01
            rows.append((c, int(t), sku, title, round(price, 2)))
    n = len(rows)
    rank = rng.permutation(n) + 1
    pop = 1.0 / rank**1.1
    pop /= pop.sum()
    category = np.array([r[0] for r in rows])
    tier = np.array([r[1] for r in rows])
    order = np.lexsort((-pop, tier, category))
    category, tier, pop = category[order], tier[order], pop[order]
    rows = [rows[i] for i in order]
    price = np.array([r[4] for r in rows])
    group = category * N_TIERS + tier
    n_groups = n_cat * N_TIERS
    group_start = np.searchsorted(group, np.arange(n_groups + 1))
    group_cum = np.empty(n)
    group_mean = np.empty((n_cat, N_TIERS))
    for g in range(n_groups):
        a, b = group_start[g], group_start[g + 1]
        p = pop[a:b] / pop[a:b].sum()
        cum = np.cumsum(p)
        cum[-1] = 1.0
        group_cum[a:b] = g + cum
        group_mean[g // N_TIERS, g % N_TIERS] = float((p * price[a:b]).sum())
    cat_share = np.bincount(category, weights=pop, minlength=n_cat)
    return Catalogue(
        sku=[r[2] for r in rows],
        title=[r[3] for r in rows],
        category=category,
        tier=tier,
        price=price,
        popularity=pop,
        categories=cats,
        category_share=cat_share,
        group_start=group_start,
        group_cum=group_cum,
        group_mean_price=group_mean,
    )
