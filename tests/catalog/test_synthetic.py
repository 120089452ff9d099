"""The synthetic generator: deterministic, uneven availability tied to popularity, style-coherent tags."""

import numpy as np

from catalog.synthetic import SyntheticSpec, generate
from catalog.tables import SetTable, VectorTable


def test_same_seed_same_catalogue_other_seed_other_catalogue() -> None:
    a, b = generate(SyntheticSpec(n_artists=300, seed=1)), generate(SyntheticSpec(n_artists=300, seed=1))
    c = generate(SyntheticSpec(n_artists=300, seed=2))
    np.testing.assert_array_equal(a.styles, b.styles)
    audio_a, audio_b, audio_c = (s.catalog.modalities["audio"] for s in (a, b, c))
    assert isinstance(audio_a, VectorTable) and isinstance(audio_b, VectorTable) and isinstance(audio_c, VectorTable)
    np.testing.assert_array_equal(audio_a.values, audio_b.values)
    assert not np.array_equal(audio_a.values, audio_c.values)


def test_popular_artists_have_listening_data_niche_ones_audio() -> None:
    synthetic = generate(SyntheticSpec(n_artists=4000))
    catalog = synthetic.catalog
    assert catalog.popularity is not None
    popular = catalog.popularity > np.quantile(catalog.popularity, 0.75)
    niche = catalog.popularity < np.quantile(catalog.popularity, 0.25)
    cf, audio = catalog.modalities["cf"].present, catalog.modalities["audio"].present
    assert cf[popular].mean() > 0.8 > 0.2 > cf[niche].mean()
    assert audio[niche].mean() > audio[popular].mean() + 0.2
    only_audio = audio & ~cf & ~catalog.modalities["tag"].present
    assert only_audio[niche].mean() > 0.3  # niche artists are often known by audio alone
    counts = catalog.present().sum(axis=0)
    assert {0, 1, 2, 3} <= set(counts.tolist())  # every degree of coverage occurs


def test_tags_come_mostly_from_the_artists_style() -> None:
    spec = SyntheticSpec(n_artists=1000)
    synthetic = generate(spec)
    tags = synthetic.catalog.modalities["tag"]
    assert isinstance(tags, SetTable)
    owners = np.repeat(np.arange(1000), np.diff(tags.indptr))
    style_tags = tags.items < spec.n_styles * spec.tags_per_style
    own = (tags.items[style_tags] // spec.tags_per_style) == synthetic.styles[owners[style_tags]]
    assert own.mean() > 0.6
