"""Fixed vocabularies the synthetic XDM data is drawn from.

Everything here is data, not logic: names, places, products, pages and the weights that make the
generated population look like a retailer's (skewed to the US, a long tail of products, a purchase
funnel inside each browsing session). Segment templates draw their parameters from the same lists,
so every generated segment selects somebody.
"""

from __future__ import annotations

from typing import Final

FIRST_NAMES: Final = (
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Margaret",
    "Paul",
    "Sandra",
    "Lukas",
    "Emma",
    "Leon",
    "Mia",
    "Louis",
    "Chloe",
    "Hugo",
    "Lea",
    "Haruto",
    "Yui",
    "Ren",
    "Sakura",
    "Arjun",
    "Priya",
    "Rohan",
    "Ananya",
    "Gabriel",
    "Julia",
    "Miguel",
    "Sofia",
    "Oliver",
    "Amelia",
    "Noah",
    "Isla",
    "Liam",
    "Ava",
    "Lucas",
    "Ella",
    "Mateo",
    "Valentina",
)

#: Last names; a few start with "Mc" so a prefix segment has members.
LAST_NAMES: Final = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "McDonald",
    "McCarthy",
    "McKenzie",
    "McLeod",
    "Mueller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefebvre",
    "Sato",
    "Suzuki",
    "Takahashi",
    "Tanaka",
    "Watanabe",
    "Patel",
    "Sharma",
    "Singh",
    "Kumar",
    "Gupta",
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Costa",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Walsh",
    "Fernandez",
    "Gomez",
    "Ruiz",
    "Diaz",
    "Nguyen",
    "Tremblay",
    "Roy",
    "Gagnon",
    "Wright",
    "King",
    "Scott",
    "Green",
    "Baker",
)

EMAIL_DOMAINS: Final = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "hotmail.com",
    "example.com",
    "yahoo.co.uk",
    "web.de",
    "orange.fr",
    "gmx.de",
)
EMAIL_DOMAIN_WEIGHTS: Final = (0.38, 0.12, 0.12, 0.1, 0.08, 0.06, 0.04, 0.04, 0.03, 0.03)

#: XDM ``person.gender`` values; None stands for "not given".
GENDERS: Final = ("male", "female", "not_specified", None)
GENDER_WEIGHTS: Final = (0.44, 0.44, 0.04, 0.08)

#: (country, currency, weight): about ten countries, skewed to the US.
COUNTRIES: Final = (
    ("US", "USD", 0.45),
    ("GB", "GBP", 0.10),
    ("DE", "EUR", 0.09),
    ("FR", "EUR", 0.08),
    ("CA", "CAD", 0.07),
    ("AU", "AUD", 0.05),
    ("JP", "JPY", 0.05),
    ("BR", "BRL", 0.04),
    ("IN", "INR", 0.04),
    ("ES", "EUR", 0.03),
)

#: (country, city, state or None, postal-code prefix); two random digits complete a postal code.
CITIES: Final = (
    ("US", "New York", "NY", "100"),
    ("US", "Los Angeles", "CA", "900"),
    ("US", "Chicago", "IL", "606"),
    ("US", "Houston", "TX", "770"),
    ("US", "Phoenix", "AZ", "850"),
    ("US", "San Francisco", "CA", "941"),
    ("US", "Seattle", "WA", "981"),
    ("US", "Denver", "CO", "802"),
    ("US", "Boston", "MA", "021"),
    ("US", "Miami", "FL", "331"),
    ("US", "Atlanta", "GA", "303"),
    ("US", "Austin", "TX", "787"),
    ("GB", "London", None, "SW1A 1"),
    ("GB", "Manchester", None, "M1 1"),
    ("GB", "Edinburgh", None, "EH1 1"),
    ("DE", "Berlin", "BE", "101"),
    ("DE", "Munich", "BY", "803"),
    ("DE", "Hamburg", "HH", "203"),
    ("FR", "Paris", None, "750"),
    ("FR", "Lyon", None, "690"),
    ("FR", "Marseille", None, "130"),
    ("CA", "Toronto", "ON", "M5V "),
    ("CA", "Vancouver", "BC", "V6B "),
    ("CA", "Montreal", "QC", "H2X "),
    ("AU", "Sydney", "NSW", "20"),
    ("AU", "Melbourne", "VIC", "30"),
    ("JP", "Tokyo", None, "100-00"),
    ("JP", "Osaka", None, "530-00"),
    ("BR", "Sao Paulo", "SP", "01310-1"),
    ("BR", "Rio de Janeiro", "RJ", "20040-0"),
    ("IN", "Mumbai", "MH", "4000"),
    ("IN", "Bengaluru", "KA", "5600"),
    ("ES", "Madrid", None, "280"),
    ("ES", "Barcelona", None, "080"),
)

LOYALTY_TIERS: Final = ("bronze", "silver", "gold", "platinum")
LOYALTY_TIER_WEIGHTS: Final = (0.4, 0.3, 0.2, 0.1)
#: Mean loyalty points per tier (log-normally spread around it).
LOYALTY_POINTS_MEAN: Final = (800, 3_000, 9_000, 25_000)

BROWSERS: Final = ("Chrome", "Safari", "Edge", "Firefox", "Samsung Internet")
BROWSER_WEIGHTS: Final = (0.6, 0.22, 0.1, 0.06, 0.02)

EVENT_TYPES: Final = (
    "commerce.purchases",
    "commerce.productViews",
    "commerce.productListAdds",
    "commerce.checkouts",
    "web.webpagedetails.pageViews",
    "web.formFilledOut",
    "application.launch",
    "message.opened",
    "message.clicked",
    "commerce.productListRemovals",
)
#: Type weights for the first event of a session (arrival) and for later ones (the funnel).
FIRST_EVENT_WEIGHTS: Final = (0.0, 0.22, 0.0, 0.0, 0.33, 0.04, 0.16, 0.15, 0.10, 0.0)
LATER_EVENT_WEIGHTS: Final = (0.11, 0.30, 0.17, 0.08, 0.17, 0.03, 0.0, 0.0, 0.06, 0.08)

#: Site pages a page view lands on, with weights; product, checkout and order pages are implied by type.
SITE_PAGES: Final = (
    ("Home", "/", 0.34),
    ("Search results", "/search", 0.14),
    ("Deals", "/deals", 0.12),
    ("New arrivals", "/new", 0.09),
    ("Account", "/account", 0.08),
    ("Help", "/help", 0.06),
    ("Store locator", "/stores", 0.05),
    ("Gift cards", "/gift-cards", 0.05),
    ("Blog", "/blog", 0.05),
    ("Returns", "/help/returns", 0.04),
    ("Careers", "/careers", 0.02),
)
FORM_PAGES: Final = (("Newsletter signup", "/newsletter"), ("Contact us", "/contact"))
PRODUCT_PAGE: Final = ("Product detail", "/products/")
CART_PAGE: Final = ("Cart", "/cart")
CHECKOUT_PAGE: Final = ("Checkout", "/checkout")
ORDER_PAGE: Final = ("Order confirmation", "/order/confirmation")
SITE: Final = "https://shop.example.com"

_ADJECTIVES: Final = (
    "Trail",
    "Summit",
    "Urban",
    "Coastal",
    "Alpine",
    "Classic",
    "Rapid",
    "Cozy",
    "Nordic",
    "Desert",
)
_NOUNS: Final = (
    "Tent",
    "Backpack",
    "Jacket",
    "Boots",
    "Stove",
    "Lantern",
    "Sleeping Bag",
    "Water Bottle",
    "Hoodie",
    "Sneakers",
    "Cap",
    "Gloves",
    "Socks",
    "Fleece",
    "Rain Shell",
    "Hammock",
    "Headlamp",
    "Trekking Poles",
    "Camp Chair",
    "Cooler",
)
#: Unit prices in cents per noun (the adjective adds a per-product variation).
_NOUN_PRICE_CENTS: Final = (
    24_999,
    8_999,
    15_999,
    13_499,
    6_999,
    2_999,
    11_999,
    1_999,
    5_499,
    9_999,
    2_499,
    2_999,
    1_299,
    6_499,
    17_999,
    4_999,
    3_499,
    7_999,
    3_999,
    12_999,
)


def products() -> tuple[tuple[str, str, int], ...]:
    """The product catalogue: ``(SKU, name, unit price in cents)``, 200 products."""
    catalogue = []
    for a, adjective in enumerate(_ADJECTIVES):
        for n, noun in enumerate(_NOUNS):
            number = a * len(_NOUNS) + n + 1
            price = _NOUN_PRICE_CENTS[n] + a * 500
            catalogue.append((f"SKU-{number:05d}", f"{adjective} {noun}", price))
    return tuple(catalogue)


PRODUCTS: Final = products()
