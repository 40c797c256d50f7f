"""Built-in English text for the embedded eSpeak corpus: sentences drawn from small word lists and templates.

The lists mix short and long words with many consonant clusters and vowels, so that a few hundred sentences
cover eSpeak's English phone set. `sentences(n, seed)` is deterministic.
"""
import random

NOUNS = ("garden", "teacher", "river", "window", "orange", "bicycle", "village", "doctor", "kitten", "mountain",
         "library", "journey", "sandwich", "thunder", "rabbit", "engine", "puzzle", "question", "shadow", "harbour",
         "violin", "treasure", "message", "blanket", "forest", "pencil", "camera", "whistle", "judge", "feather",
         "chimney", "yellow boat", "plumber", "zebra", "voyage", "kitchen", "breakfast", "squirrel", "castle")
ADJECTIVES = ("quiet", "ancient", "bright", "heavy", "clever", "frozen", "gentle", "thirsty", "crooked", "shiny",
              "enormous", "careful", "vivid", "smooth", "rusty", "eager", "hollow", "jolly", "peculiar", "wooden",
              "fragile", "curious", "muddy", "loyal", "strange")
VERBS = ("carried", "painted", "followed", "watched", "borrowed", "repaired", "described", "questioned", "pushed",
         "measured", "discovered", "thanked", "washed", "judged", "visited", "changed", "reached", "gathered",
         "launched", "whispered to", "sketched", "adjusted", "shared", "scratched", "rescued")
ADVERBS = ("slowly", "quickly", "yesterday", "again", "at midnight", "before breakfast", "without a word",
           "every thursday", "in the evening", "with great care", "for three hours", "twice", "usually",
           "on a sunny afternoon", "just in time")
PLACES = ("near the station", "behind the old church", "across the valley", "under the bridge", "in the museum",
          "beside the lake", "on the seventh floor", "through the narrow streets", "at the edge of town",
          "inside the warm shop")
TEMPLATES = (
    "The {adj} {noun} {verb} the {noun2} {adv}.",
    "A {adj} {noun} {verb} my {noun2} {place}.",
    "Did the {noun} really say that the {noun2} was {adj}?",
    "{Adv}, the {noun} {verb} a {adj} {noun2} {place}.",
    "We {verb} the {adj} {noun} and the {noun2} {adv}.",
    "Nobody expected the {noun} to be so {adj} {place}.",
    "Her {noun} {verb} {number} {adj} {noun2}s {adv}.",
    "Why would anyone leave a {adj} {noun} {place}?",
)
NUMBERS = ("two", "three", "seven", "eleven", "twenty", "forty six", "a hundred", "several", "a dozen")


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        noun, noun2 = rng.sample(NOUNS, 2)
        adv = rng.choice(ADVERBS)
        text = rng.choice(TEMPLATES).format(
            adj=rng.choice(ADJECTIVES), noun=noun, noun2=noun2, verb=rng.choice(VERBS), adv=adv,
            Adv=adv[0].upper() + adv[1:], place=rng.choice(PLACES), number=rng.choice(NUMBERS))
        out.append(text[0].upper() + text[1:])
    return out
