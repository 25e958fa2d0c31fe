"""Writes src/mtst/calibration.txt: 300 varied synthetic sentences for int8 calibration.

Generated from templates with a fixed seed (not taken from any benchmark test set), mixing lengths
(2 to ~60 words), domains (news, sport, business, science, reviews, chat), named entities and questions.
    .venv/bin/python benchmarks/speed/make_calibration.py
"""

from __future__ import annotations

import random
from pathlib import Path

PEOPLE = ["Maria Lopez", "Ahmed Khan", "Yuki Tanaka", "Peter Novak", "Grace Okafor", "Lars Eriksson", "Ana Souza",
          "Chen Wei", "Fatima Zahra", "Tom Becker", "Olivia Brown", "Raj Patel"]
PLACES = ["Lisbon", "Nairobi", "Osaka", "Toronto", "Krakow", "Lima", "Melbourne", "Cairo", "Oslo", "Denver",
          "Manila", "Glasgow"]
ORGS = ["Northwind Bank", "Helios Energy", "the city council", "Bluefin Labs", "the national rail operator",
        "Orchid Pharma", "the football federation", "Vertex Motors", "the university hospital", "Cobalt Software"]
TOPICS = ["interest rates", "the new stadium", "battery recycling", "a flood warning", "the election results",
          "vaccine trials", "the trade agreement", "quarterly earnings", "a data breach", "solar panel prices",
          "the transfer window", "rural broadband"]
ADJ = ["surprising", "disappointing", "excellent", "confusing", "remarkable", "slow", "brilliant", "boring",
       "heartfelt", "clumsy", "sharp", "forgettable"]
THINGS = ["film", "novel", "laptop", "restaurant", "album", "phone", "hotel", "series", "game", "coffee maker"]
TEMPLATES = [
    "{p} met officials from {o} in {c} on Tuesday.",
    "{o} said {t} would be reviewed before the end of the year.",
    "Shares of {o} rose after the company reported {t}.",
    "Why did {o} delay its decision on {t}?",
    "The {a} {th} kept me awake all night.",
    "I thought the {th} was {a}, but my friends disagreed.",
    "{p} scored twice as the visitors from {c} won the final.",
    "Researchers in {c} published a study on {t} this week.",
    "Heavy rain in {c} forced {o} to cancel several events.",
    "Not bad at all.",
    "{a}!",
    "Can you tell me where the nearest station is in {c}?",
    "According to {p}, the debate about {t} in {c} has barely started, and {o} will need to explain "
    "its plans to residents, investors and regulators before anything changes.",
    "The {th} arrived late, the packaging was damaged, and customer support at {o} never answered my emails.",
    "{p} and {p2} will lead the new project at {o}.",
    "Prices for {t} fell sharply in {c}.",
    "Honestly, the most {a} part of the {th} was the ending.",
    "{o} hires 200 engineers in {c}",
    "Police in {c} are investigating {t}, a spokesperson for {o} confirmed on Friday evening.",
    "what time does the match start",
    "Local farmers near {c} worry that {t} could hurt this season's harvest.",
    "{p}, who grew up in {c}, joined {o} in 2019 after a decade abroad.",
]


def main() -> None:
    rng = random.Random(20261125)
    seen: set[str] = set()
    lines: list[str] = []
    while len(lines) < 300:
        template = rng.choice(TEMPLATES)
        people = rng.sample(PEOPLE, 2)
        text = template.format(p=people[0], p2=people[1], c=rng.choice(PLACES), o=rng.choice(ORGS),
                               t=rng.choice(TOPICS), a=rng.choice(ADJ), th=rng.choice(THINGS))
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            lines.append(text)
    target = Path(__file__).resolve().parents[2] / "src" / "mtst" / "calibration.txt"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} sentences to {target}")


if __name__ == "__main__":
    main()
