"""Realistic synthetic clients for the demo, the tests and the benchmarks.

:func:`generate_client` writes a client's daily raw profile snapshots
(DESIGN §2) from a simulated *world*: users created over ~800 days, each with
latent purchase, browsing, messaging, opening and opt-out behaviour, weekly
and yearly rhythms, campaigns, churn, a product catalogue and per-user tastes.
The ground truth is kept beside the data (``clients/{client}/truth/``), never in
the profiles: :func:`load_truth` reads a snapshot's latent parameters, and
:func:`oracle_probability` / :func:`oracle_expected_count` turn them into the
exact probabilities and expectations of any window, the ceiling any model of
the sightlines can reach.

Notes
-----
The latent model, per user (all parameters in :class:`._model.ModelParams`):

* creation times follow exponential signup growth; a snapshot of date D holds
  the users created before D+1 00:00Z and their events before that instant;
* page views are a Poisson process ``pv_rate * activity(t)`` while alive
  (creation to churn), doubled in the first 14 days; purchases are the same
  process with rate ``purchase_rate = conv * pv_rate``, so browsing intensity
  drives buying. ``activity(t)`` has weekend peaks, a December season and
  sale days. ``pv_rate`` depends on the acquisition source (``vars.source``),
  ``conv`` on a paid membership (``vars.membership``);
* churn ends all activity; most users live ~500 days on average, "one-offs"
  (likelier from giveaways and checkout sign-ups, ``vars.signup``) ~4 days;
* messages (e-mail, SMS, push) arrive at per-user rates on the brand's mail
  calendar (send days and campaign bursts) until 60 days after churn; each
  is opened with a per-user probability (less after churn) and clicked with
  another; each e-mail may trigger the e-mail opt-out with a probability
  that grows with the user's mailing rate, and no e-mails follow it;
* orders carry 1 + Poisson(basket) items drawn from the catalogue by the
  user's category affinity, price-tier preference and SKU popularity.

Examples
--------
>>> from sightlines.storage import Storage
>>> from sightlines.synth import generate_client, load_truth, oracle_probability
>>> acme = Storage("memory://doctest-synth").client("acme")
>>> result = generate_client(acme, users=1000, date="2026-11-24", seed=7, workers=1)
>>> truth = load_truth(acme, "2026-11-24")
>>> p7 = oracle_probability(truth, "2026-11-24", "2026-12-01", role="purchases")
>>> len(p7) == result.n_records == 1000
True
"""

from ._generate import generate_client
from ._oracle import oracle_expected_count, oracle_probability
from ._truth import load_truth

__all__ = ["generate_client", "load_truth", "oracle_probability", "oracle_expected_count"]
