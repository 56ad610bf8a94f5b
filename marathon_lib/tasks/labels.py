"""Answer options exactly as the benchmark spells them ("Name - code" where it has codes): the synthetic
generator writes them and `marathon segment` labels real clips with them."""

from __future__ import annotations

# Multiple-choice texts exactly as the benchmark spells them ("Name - code" where it has codes).
TAU_SCENES: tuple[str, ...] = (
    "Airport - airport",
    "Indoor shopping mall - shopping_mall",
    "Metro station - metro_station",
    "Pedestrian street - street_pedestrian",
    "Public square - public_square",
    "Street with medium level of traffic - street_traffic",
    "Traveling by a tram - tram",
    "Traveling by a bus - bus",
    "Traveling by an underground metro - metro",
    "Urban park - park",
)
GTZAN_GENRES: tuple[str, ...] = (
    "Blues - blues", "Classical - classical", "Country - country", "Disco - disco",
    "Hip-hop - hiphop", "Jazz - jazz", "Metal - metal", "Pop - pop", "Reggae - reggae",
    "Rock - rock",
)
DESED_EVENTS: tuple[str, ...] = (
    "Alarm bell ringing", "Blender", "Cat", "Dishes", "Dog", "Electric shaver/toothbrush",
    "Frying", "Running water", "Speech", "Vacuum cleaner",
)
VESUS_EMOTIONS: tuple[str, ...] = ("angry", "happy", "sad", "fearful", "monotone")
VOX_AGE_GROUPS: tuple[str, ...] = (
    "Young Adult (18-30)", "Early Career (31-40)", "Mid Career (41-50)", "Senior (51-70)",
    "Elderly (71+)",
)



def label_code(option: str) -> str:
    """'Metro station - metro_station' -> 'metro_station'."""
    return option.rsplit(" - ", 1)[-1]
