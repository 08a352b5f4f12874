"""Synthetic chat turns and questions for benchmarks: deterministic, from a small
vocabulary of people, places, months and activities, shaped like personal chat."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

NAMES = (
    "Alice Bruno Carla Dmitri Elena Farid Grace Hiro Ines Jonas Keiko Liam Maya Nadia Omar Priya Quentin Rosa "
    "Samir Tara Umar Vera Wen Xavier Yara Zoe Anika Bilal Chiara Diego Esme Felix Greta Hugo Isla Jamal Kira Luca "
    "Mira Nico Olga Pablo Rhea Sven Tomas Uma Vikram Willa Yusuf Zane"
).split()
PLACES = (
    "Berlin Lisbon Kyoto Denver Oslo Nairobi Lima Hanoi Dublin Austin Porto Seoul Vienna Toronto Cusco Marrakesh "
    "Reykjavik Krakow Seattle Valencia Tbilisi Melbourne Chicago Istanbul Prague Bangkok Boston Zurich Naples "
    "Edinburgh Montreal Sapporo Bergen Tucson Santiago Bologna Tallinn Havana Hobart Quebec"
).split()
MONTHS = "January February March April May June July August September October November December".split()
ACTIVITIES = (
    "hiking", "surfing", "pottery", "rock climbing", "painting", "baking sourdough", "running a half marathon",
    "learning the violin", "kayaking", "birdwatching", "gardening", "woodworking", "salsa dancing", "chess",
    "yoga", "photography", "skiing", "camping", "knitting", "cycling", "scuba diving", "volunteering at the shelter",
)
FOODS = (
    "ramen", "paella", "lasagna", "tacos", "pho", "dumplings", "risotto", "curry", "falafel", "pierogi",
    "sushi", "moussaka", "gnocchi", "shakshuka", "bibimbap", "empanadas", "goulash", "pad thai",
)
PETS = ("dog", "cat", "parrot", "rabbit", "turtle", "hamster", "puppy", "kitten")
PET_NAMES = "Biscuit Pepper Mochi Luna Ziggy Olive Pickles Nova Tofu Rocket Maple Scout".split()
JOBS = (
    "nurse", "teacher", "software engineer", "architect", "chef", "photographer", "lawyer", "pharmacist",
    "carpenter", "data analyst", "librarian", "pilot", "veterinarian", "translator",
)
THINGS = (
    "a new bike", "concert tickets", "a vintage camera", "a used car", "a sofa", "running shoes", "a telescope",
    "a sewing machine", "a guitar", "a tent", "a kayak", "an espresso machine", "a drone", "hiking boots",
)
FEELINGS = ("thrilled", "exhausted", "nervous", "proud", "relieved", "a bit sad", "so grateful", "excited")

USER_TEMPLATES = (
    "I went {activity} in {place} with {name} last {month}, it was amazing.",
    "My {pet} {pet_name} got sick in {month}, we had to see the vet twice.",
    "{name} and I are planning a trip to {place} in {month}.",
    "I finally tried {activity} this weekend and I'm {feeling} about it.",
    "I cooked {food} for {name}'s birthday dinner on the {day} of {month}.",
    "My sister {name} just started a new job as a {job} in {place}.",
    "I bought {thing} in {month} and I've used it every day since.",
    "We adopted a {pet} named {pet_name} back in {month}.",
    "I've been feeling {feeling} since {name} moved to {place}.",
    "I'm training for a race in {place} this {month}, running {day_num} km a week.",
    "{name} taught me how to make {food} when we lived in {place}.",
    "I got promoted to senior {job} in {month}, still can't believe it.",
    "I lost my keys at the {food} place near my office in {place} again.",
    "My friend {name} recommended {activity}, so I signed up for a class in {month}.",
    "Last {month} I visited {name} in {place} and we went {activity} every morning.",
    "I'm allergic to shellfish, so I never order {food} without asking first.",
    "My daughter wants {thing} for her birthday in {month}.",
    "We spent a rainy week in {place} in {month} eating {food} and playing chess.",
    "I'm thinking about quitting my job as a {job} to open a {food} stand.",
    "{name} broke their leg {activity} in {place} in {month}.",
)
ASSISTANT_TEMPLATES = (
    "That sounds wonderful! How long did you stay in {place}?",
    "I'm sorry to hear about {pet_name}. Is your {pet} feeling better now?",
    "{place} in {month} is lovely. Do you want suggestions for {activity} spots?",
    "Congratulations! Being a {job} must keep you busy.",
    "{food} is a great choice. Did {name} enjoy it?",
    "Noted: you're {feeling} about {activity}. Want me to remind you of the next session?",
    "How is {name} settling in {place}?",
    "Would you like me to keep track of your plans for {month}?",
    "Got it. I'll remember that {name} lives in {place}.",
    "What made you pick {thing}?",
)
QUESTION_TEMPLATES = (
    "where did {name} travel in {month}?",
    "what did I cook for {name}'s birthday?",
    "when did I go {activity} in {place}?",
    "what is the name of my {pet}?",
    "what job did {name} start in {place}?",
    "who moved to {place}?",
    "what did I buy in {month}?",
    "who taught me to make {food}?",
    "how did {name} break their leg?",
    "what was I {feeling} about in {month}?",
    "which trip to {place} did I plan with {name}?",
    "when was I promoted to {job}?",
)
ORDINALS = ("1st", "3rd", "5th", "8th", "12th", "14th", "17th", "21st", "23rd", "28th")
START = datetime(2021, 1, 4, 9, 0, tzinfo=timezone.utc)


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        name=rng.choice(NAMES), place=rng.choice(PLACES), month=rng.choice(MONTHS),
        activity=rng.choice(ACTIVITIES), food=rng.choice(FOODS), pet=rng.choice(PETS),
        pet_name=rng.choice(PET_NAMES), job=rng.choice(JOBS), thing=rng.choice(THINGS),
        feeling=rng.choice(FEELINGS), day=rng.choice(ORDINALS), day_num=rng.randint(10, 60),
    )


def turns(count: int, seed: int = 0) -> Iterator[dict]:
    """`count` chat messages (dicts for `Memory.add`), alternating user and assistant,
    one minute apart, starting in January 2021."""
    rng = random.Random(seed)
    for index in range(count):
        role = "user" if index % 2 == 0 else "assistant"
        template = rng.choice(USER_TEMPLATES if role == "user" else ASSISTANT_TEMPLATES)
        yield {
            "role": role,
            "content": _fill(template, rng),
            "timestamp": (START + timedelta(minutes=index)).isoformat(),
        }


def questions(count: int, seed: int = 1) -> list[str]:
    """`count` distinct questions about what the synthetic turns talk about."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < count:
        out[_fill(rng.choice(QUESTION_TEMPLATES), rng)] = None
    return list(out)
