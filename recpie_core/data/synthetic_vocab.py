"""The words of the synthetic Google Local world: aspects, categories, name parts, places, people
and review-text pieces. Tables only; ``synthetic.py`` and ``synthetic_writer.py`` draw from them.

Every piece is plain ASCII. Review-text pieces also have no quote or backslash, so the writer can
emit ``'"' + text + '"'`` as JSON without escaping (checked at import).

Aspect names are matched as substrings (tests and probes find a place's aspects in its
description), so no other text a description holds (kinds, adjectives, sentences, cities)
contains an aspect name other than the one it is about.
"""

from __future__ import annotations

from typing import NamedTuple


class Aspect(NamedTuple):
    valence: int  # +1 most users like it, -1 most dislike it, 0 it divides
    phrase: str | None  # how a description's opening line advertises it; None: never advertised
    adjective: str  # an opening-line adjective that hints at it ("Quiet cafe ...", "Upscale bar ...")
    name_words: tuple[str, ...]  # place-name words that hint at it ("Trailside Park"); () none
    sentence: str  # the description sentence that names it


ASPECT_TABLE: dict[str, Aspect] = {
    "live music": Aspect(0, "live music", "Lively", ("Encore", "Backbeat", "Jam Session"),
                         "There is live music on most evenings."),
    "vegan options": Aspect(0, "vegan options", "Plant-forward", ("Sprout", "Green Leaf", "Seedling"),
                            "The menu has plenty of vegan options."),
    "quiet workspace": Aspect(1, "a quiet workspace", "Quiet", ("Quiet", "Studious", "Still Water"),
                              "It doubles as a quiet workspace with outlets at every table."),
    "outdoor seating": Aspect(1, "outdoor seating", "Airy", ("Patio", "Courtyard", "Garden"),
                              "There is outdoor seating under the trees."),
    "friendly staff": Aspect(1, "friendly staff", "Welcoming", ("Neighborly", "Friendly", "Welcome"),
                             "The friendly staff know the regulars by name."),
    "long wait": Aspect(-1, None, "Popular", (),
                        "Visitors should expect a long wait at peak hours."),
    "fast service": Aspect(1, "fast service", "Efficient", ("Express", "Quick Stop", "Rapid"),
                           "Fast service keeps the line moving."),
    "free wifi": Aspect(1, "free wifi", "Laptop-friendly", ("Wired", "Byte", "Hotspot"),
                        "Free wifi is available to every guest."),
    "specialty coffee": Aspect(1, "specialty coffee", "Third-wave", ("Single Origin", "Roastery", "Pour Over"),
                               "They pour specialty coffee from local roasters."),
    "craft beer": Aspect(0, "craft beer", "Laid-back", ("Hops", "Brewhouse", "Growler"),
                         "A rotating list of craft beer is on tap."),
    "creative cocktails": Aspect(0, "creative cocktails", "Stylish", ("Alchemy", "Elixir", "Mixology"),
                                 "The bar is known for creative cocktails."),
    "happy hour deals": Aspect(1, "happy hour deals", "Buzzing", ("Five O'Clock", "Happy Hour"),
                               "Weekday happy hour deals draw a crowd."),
    "large portions": Aspect(1, "large portions", "Hearty", ("Hearty", "Big Plate", "Heaping"),
                             "Plates come in large portions."),
    "high prices": Aspect(-1, None, "Upscale", ("Luxe", "Prestige"),
                          "High prices match the prime location."),
    "cheap eats": Aspect(1, "cheap eats", "Budget-friendly", ("Thrifty", "Nickel", "Penny"),
                         "Locals call it a go-to for cheap eats."),
    "kids area": Aspect(0, "a kids area", "Family-friendly", ("Kiddo", "Little Ones", "Playful"),
                        "A kids area keeps the little ones busy."),
    "dog-friendly patio": Aspect(0, "a dog-friendly patio", "Pet-welcoming", ("Wag", "Dog Days", "Barking"),
                                 "Bring your pup to the dog-friendly patio."),
    "easy parking": Aspect(1, "easy parking", "Convenient", ("Roadside", "Drive-Up"),
                           "There is easy parking in the lot out back."),
    "crowds": Aspect(-1, None, "Bustling", ("Bustling",),
                     "Weekend crowds fill every corner."),
    "loud music": Aspect(-1, None, "High-energy", ("Thunder", "Amplified"),
                         "Reviewers mention loud music late into the night."),
    "fresh pastries": Aspect(1, "fresh pastries", "Charming", ("Butter Crust", "Croissant", "Golden Crumb"),
                             "Fresh pastries come out of the oven every morning."),
    "gluten-free options": Aspect(0, "gluten-free options", "Health-minded", ("Wholesome", "Pure Grain"),
                                  "Gluten-free options are clearly marked."),
    "late-night hours": Aspect(0, "late-night hours", "Night-owl", ("Midnight", "Night Owl", "After Hours"),
                               "Late-night hours make it a good last stop."),
    "clean restrooms": Aspect(1, "clean restrooms", "Well-kept", (),
                              "Guests appreciate the clean restrooms."),
    "rude staff": Aspect(-1, None, "No-frills", (),
                         "Some reviewers mention rude staff at the counter."),
    "scenic views": Aspect(1, "scenic views", "Picturesque", ("Vista", "Overlook", "Bayview"),
                           "Scenic views stretch across the bay."),
    "walking trails": Aspect(1, "walking trails", "Leafy", ("Trailside", "Pathway", "Ridgeline"),
                             "Shaded walking trails loop through the grounds."),
    "modern equipment": Aspect(1, "modern equipment", "State-of-the-art", ("Iron Works", "Apex", "Forge"),
                               "Two floors are filled with modern equipment."),
    "group classes": Aspect(0, "group classes", "Energetic", ("Collective", "Tribe", "Together"),
                            "Group classes run from dawn to dusk."),
    "rare books": Aspect(0, "rare books", "Old-world", ("Antiquarian", "First Edition", "Folio"),
                         "Shelves of rare books line the back room."),
    "reading nooks": Aspect(1, "reading nooks", "Cozy", ("Hideaway", "Cozy Corner", "Nook"),
                            "Cozy reading nooks invite you to stay."),
    "interactive exhibits": Aspect(1, "interactive exhibits", "Hands-on", ("Discovery", "Curiosity", "Hands-On"),
                                   "Interactive exhibits cover science and history."),
    "guided tours": Aspect(0, "guided tours", "Historic", ("Heritage", "Landmark"),
                           "Guided tours start every hour."),
    "sports on TV": Aspect(0, "sports on TV", "Game-day", ("Game Day", "Touchdown", "Sports"),
                           "Big screens show sports on TV all day."),
    "spicy food": Aspect(0, "spicy food", "Bold", ("Chili", "Habanero", "Fire"),
                         "The kitchen is famous for spicy food."),
    "brunch menu": Aspect(1, "a brunch menu", "Sunny", ("Sunday", "Morning Glory", "Brunch"),
                          "A weekend brunch menu runs until 3pm."),
    "picnic tables": Aspect(1, "picnic tables", "Relaxed", ("Picnic", "Meadow"),
                            "Picnic tables sit in the shade near the entrance."),
    "cramped space": Aspect(-1, None, "Compact", ("Tiny", "Hole-in-the-Wall"),
                            "The cramped space fills up quickly."),
}
ASPECTS: tuple[str, ...] = tuple(ASPECT_TABLE)
EVERYWHERE = ("friendly staff", "rude staff", "long wait", "high prices", "easy parking", "crowds")


class Category(NamedTuple):
    secondary: tuple[str, ...]  # categories a place may list after its primary one
    pool: tuple[str, ...]  # aspects a place may have, besides EVERYWHERE
    hours: tuple[str, str]  # opens, closes
    price: str | None  # the meta "price" field
    kinds: tuple[str, ...]  # what a description's opening line calls it ("coffee shop")
    nouns: tuple[str, ...]  # last word(s) of a place name ("Coffee" in "Quiet Bean Coffee")
    middles: tuple[str, ...]  # optional word before the noun ("Bean"); () none
    adjectives: tuple[str, ...]  # opening-line adjectives that hint at no aspect


CATEGORIES: dict[str, Category] = {
    "Cafe": Category(
        ("Coffee shop", "Breakfast restaurant", "Espresso bar"),
        ("specialty coffee", "quiet workspace", "free wifi", "outdoor seating", "fresh pastries",
         "vegan options", "dog-friendly patio", "cramped space"),
        ("7AM", "6PM"), "$", ("cafe", "coffee shop", "espresso bar"),
        ("Cafe", "Coffee", "Coffee House", "Espresso"), ("Bean", "Cup", "Roast", "Leaf"),
        ("Neighborhood", "Casual", "Friendly little")),
    "Restaurant": Category(
        ("Mexican restaurant", "Italian restaurant", "Vegan restaurant", "Brunch restaurant",
         "Thai restaurant"),
        ("large portions", "vegan options", "gluten-free options", "outdoor seating", "spicy food",
         "brunch menu", "fast service", "cheap eats", "kids area"),
        ("11AM", "10PM"), "$$", ("restaurant", "eatery", "kitchen"),
        ("Kitchen", "Bistro", "Eatery", "Grill"), ("Table", "Plate", "Fork", "Hearth"),
        ("Casual", "Neighborhood", "Classic")),
    "Bar": Category(
        ("Pub", "Sports bar", "Cocktail bar", "Wine bar"),
        ("live music", "craft beer", "creative cocktails", "happy hour deals", "sports on TV",
         "loud music", "late-night hours", "outdoor seating"),
        ("4PM", "2AM"), "$$", ("bar", "pub", "watering hole"),
        ("Tavern", "Pub", "Taproom", "Lounge"), ("Barrel", "Anchor", "Fox", "Lantern"),
        ("Neighborhood", "Classic", "Dimly lit")),
    "Bakery": Category(
        ("Dessert shop", "Pastry shop", "Cafe"),
        ("fresh pastries", "specialty coffee", "gluten-free options", "vegan options", "cheap eats",
         "fast service", "cramped space"),
        ("6AM", "3PM"), "$", ("bakery", "bakeshop", "pastry shop"),
        ("Bakery", "Bakehouse", "Patisserie"), ("Crumb", "Loaf", "Rise", "Flour"),
        ("Neighborhood", "Family-run", "Old-fashioned")),
    "Park": Category(
        ("Hiking area", "Playground", "Dog park"),
        ("walking trails", "scenic views", "kids area", "dog-friendly patio", "picnic tables",
         "clean restrooms"),
        ("6AM", "10PM"), None, ("park", "green space", "nature preserve"),
        ("Park", "Gardens", "Commons", "Preserve"), (),
        ("Peaceful", "Open", "Green")),
    "Museum": Category(
        ("Art museum", "Science museum", "History museum"),
        ("interactive exhibits", "guided tours", "kids area", "clean restrooms", "scenic views"),
        ("10AM", "5PM"), "$$", ("museum", "gallery", "exhibition hall"),
        ("Museum", "Discovery Center", "Gallery"), (),
        ("Small", "Renowned", "Thoughtful")),
    "Gym": Category(
        ("Fitness center", "Yoga studio", "Climbing gym"),
        ("modern equipment", "group classes", "late-night hours", "clean restrooms", "loud music",
         "cramped space"),
        ("5AM", "11PM"), "$$", ("gym", "fitness center", "training studio"),
        ("Fitness", "Gym", "Athletics", "Studio"), ("Strong", "Peak", "Core"),
        ("Friendly", "Serious", "Community")),
    "Bookstore": Category(
        ("Used book store", "Comic book store", "Cafe"),
        ("rare books", "reading nooks", "quiet workspace", "specialty coffee", "free wifi"),
        ("9AM", "9PM"), "$", ("bookstore", "bookshop", "book nook"),
        ("Books", "Bookshop", "Booksellers"), ("Page", "Ink", "Quill"),
        ("Independent", "Rambling", "Neighborhood")),
    "Live music venue": Category(
        ("Night club", "Concert hall", "Bar"),
        ("live music", "loud music", "late-night hours", "craft beer", "creative cocktails"),
        ("7PM", "2AM"), "$$", ("music venue", "concert space", "club"),
        ("Music Hall", "Theater", "Ballroom", "Club"), ("Velvet", "Echo", "Neon"),
        ("Intimate", "Legendary", "Grungy")),
}

# a plain name is one of these plus a category noun ("Redwood Kitchen"), or "<Last>'s <noun>"
PLAIN_WORDS = ("Blue", "Golden", "Oak", "Sunny", "Corner", "Old Town", "Redwood", "Pacific",
               "Harbor", "Maple", "Silver", "Urban", "Copper", "Green Door", "Main Street", "Juniper")

# city: (zip codes, latitude, longitude); the first N_MV_CITIES are the Mountain View zip codes
CITIES = {
    "Mountain View": ((94039, 94040, 94041, 94042, 94043), 37.386, -122.084),
    "Moffett Field": ((94035,), 37.415, -122.052),
    "Los Altos": ((94022, 94024), 37.385, -122.114),
    "Palo Alto": ((94301, 94303, 94306), 37.442, -122.143),
    "Sunnyvale": ((94085, 94086, 94087), 37.369, -122.036),
    "San Jose": ((95112, 95113, 95125, 95128), 37.338, -121.886),
    "San Francisco": ((94102, 94103, 94110, 94114, 94117), 37.774, -122.419),
    "Oakland": ((94607, 94610, 94612), 37.804, -122.271),
    "Santa Cruz": ((95060, 95062), 36.974, -122.031),
    "Sacramento": ((95811, 95814, 95816), 38.582, -121.494),
    "Fresno": ((93701, 93704, 93721), 36.738, -119.787),
    "Los Angeles": ((90012, 90026, 90028, 90036), 34.052, -118.244),
    "San Diego": ((92101, 92103, 92109), 32.716, -117.161),
}
N_MV_CITIES = 2
STREETS = ("Castro St", "El Camino Real", "Main St", "Oak Ave", "Shoreline Blvd", "Dana St",
           "California St", "Middlefield Rd", "Park Ave", "Mission St", "Broadway", "1st St")
FIRST = ("Maria", "James", "Wei", "Priya", "David", "Sofia", "Michael", "Ana", "Kevin", "Emily",
         "Jose", "Aisha", "Daniel", "Mei", "Chris", "Laura", "Omar", "Hannah", "Luis", "Yuki")
LAST = ("Garcia", "Smith", "Nguyen", "Patel", "Kim", "Johnson", "Lopez", "Chen", "Brown",
        "Martinez", "Singh", "Lee", "Davis", "Wong", "Rodriguez", "Miller", "Tran", "Khan")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# review text: an opener for the stars, then one sentence per liked / disliked aspect
OPENERS = {1: ("Terrible experience.", "Would not come back."), 2: ("Not great.", "Meh."),
           3: ("It was okay.", "Average overall."), 4: ("Pretty good.", "Nice place."),
           5: ("Great spot!", "Absolutely loved it.")}
LIKED = ("Loved the {}.", "Really enjoyed the {}.", "Big plus: the {}.")
DISLIKED = ("Annoyed by the {}.", "Not a fan of the {}.", "Did not like the {}.")
REPLIES = ("Thank you for your review!", "Thanks for visiting, hope to see you again.",
           "We are sorry to hear that, please reach out to us.")


def _check() -> None:
    """The promises of the module docstring, checked once at import."""
    review = [t.format(a) for a in ASPECTS for t in LIKED + DISLIKED]
    review += [*sum(OPENERS.values(), ()), *REPLIES]
    assert not any(c in piece for piece in review for c in '"\\'), "review text must need no escaping"
    words = [w for a in ASPECT_TABLE.values() for w in (a.phrase or "", a.adjective, *a.name_words, a.sentence)]
    words += [w for c in CATEGORIES.values() for w in (*c.kinds, *c.nouns, *c.middles, *c.adjectives)]
    words += [*review, *PLAIN_WORDS, *CITIES, *STREETS, *FIRST, *LAST]
    assert all(w.isascii() for w in words), "vocabulary must be ASCII"
    lower = [a.lower() for a in ASPECTS]
    for name, aspect in zip(lower, ASPECT_TABLE.values()):
        assert name in aspect.sentence.lower() and (aspect.phrase is None or name in aspect.phrase.lower())
        assert (aspect.phrase is None) == (aspect.valence < 0), "only liked-by-most or divisive aspects are advertised"
        others = [a for a in lower if a != name]
        assert not any(o in aspect.sentence.lower() or o in aspect.adjective.lower() for o in others), name
    for text in [w for c in CATEGORIES.values() for w in (*c.kinds, *c.adjectives)] + list(CITIES):
        assert not any(a in text.lower() for a in lower), text
    assert all(set(c.pool) <= set(ASPECTS) for c in CATEGORIES.values())


_check()
