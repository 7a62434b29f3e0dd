#!/usr/bin/env python3
"""Generate the fictional DEMO dataset data/demo/resources.json.

Everything this script writes is invented for mapservice: names, organisations,
addresses, phone numbers, e-mail addresses and websites do not exist. Positions
are Stadtteil centroids from data/gazetteer/places.csv plus a small random
offset (at most 600 m, less where the Stadtteil is narrow, see MAX_OFFSET_M);
postcodes are the nearest centroid from data/gazetteer/postcodes.csv within the
same Bezirk. Confidential entries (shelters) get no address, postcode or
Stadtteil, and only the Bezirk centroid as position.

Stdlib only and deterministic (random.Random(42)): running it again gives a
byte-identical file.

    python3 data/demo/generate_demo.py

Fictional contact data:
- phone numbers come from the range the Bundesnetzagentur keeps free for media
  productions in Hamburg, (0)40 66969 000-999 ("Drama Numbers", Amtsblatt 7/2021,
  Mitteilung 148/2021), so nobody real is called by mistake;
- e-mail addresses and websites use example.org (RFC 2606);
- street names are obvious placeholders (Beispielweg, Musterstraße, ...).

The output is released under CC0-1.0.
"""

import csv
import datetime
import json
import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
GAZ = os.path.join(HERE, "..", "gazetteer")
OUT = os.path.join(HERE, "resources.json")

SEED = 42
N_TOTAL = 194  # sum of CATEGORY_COUNTS

# Resources per category (every category at least 6).
CATEGORY_COUNTS = {
    "support_group": 12,
    "self_help": 10,
    "counselling": 16,
    "crisis_help": 8,
    "youth_centre": 14,
    "family_centre": 13,
    "language_cafe": 14,
    "newcomer_support": 14,
    "community_centre": 14,
    "library": 8,
    "education": 11,
    "employment": 9,
    "health": 9,
    "sport_leisure": 10,
    "culture": 8,
    "women": 9,
    "lgbtq": 6,
    "seniors": 9,
}
N_CONFIDENTIAL = 4  # shelter-type crisis_help entries with hidden location

# Approximate residents per Bezirk (thousands, rounded) -> share of resources.
BEZIRK_POP = {
    "Hamburg-Mitte": 310,
    "Altona": 280,
    "Eimsbüttel": 275,
    "Hamburg-Nord": 320,
    "Wandsbek": 445,
    "Bergedorf": 132,
    "Harburg": 172,
}

# Rough residents per Stadtteil (thousands, rounded; only used as weights).
# Stadtteile with (almost) no residents are left out: Neuwerk, Steinwerder,
# Waltershof, Kleiner Grasbrook, Billbrook, Altenwerder, Moorburg, Gut Moor,
# Francop, Reitbrook, Tatenberg, Spadenland, Moorfleet, Cranz; also Allermöhe
# and Billwerder, whose centroids lie right at their boundary.
STADTTEIL_WEIGHT = {
    # Hamburg-Mitte
    "Hamburg-Altstadt": 2, "HafenCity": 8, "Neustadt": 13, "St. Pauli": 22,
    "St. Georg": 11, "Hammerbrook": 5, "Borgfelde": 9, "Hamm": 39, "Horn": 39,
    "Billstedt": 72, "Rothenburgsort": 10, "Veddel": 4, "Wilhelmsburg": 54,
    "Finkenwerder": 12,
    # Altona
    "Altona-Altstadt": 30, "Sternschanze": 8, "Altona-Nord": 25, "Ottensen": 36,
    "Bahrenfeld": 30, "Groß Flottbek": 11, "Othmarschen": 16, "Lurup": 36,
    "Osdorf": 26, "Nienstedten": 7, "Blankenese": 13, "Iserbrook": 11,
    "Sülldorf": 9, "Rissen": 16,
    # Eimsbüttel
    "Eimsbüttel": 58, "Rotherbaum": 17, "Harvestehude": 18, "Hoheluft-West": 13,
    "Lokstedt": 30, "Niendorf": 42, "Schnelsen": 30, "Eidelstedt": 35,
    "Stellingen": 27,
    # Hamburg-Nord
    "Hoheluft-Ost": 10, "Eppendorf": 25, "Groß Borstel": 10, "Alsterdorf": 15,
    "Winterhude": 57, "Uhlenhorst": 18, "Hohenfelde": 10, "Barmbek-Süd": 37,
    "Dulsberg": 17, "Barmbek-Nord": 42, "Ohlsdorf": 17, "Fuhlsbüttel": 13,
    "Langenhorn": 47,
    # Wandsbek
    "Eilbek": 23, "Wandsbek": 36, "Marienthal": 13, "Jenfeld": 28, "Tonndorf": 15,
    "Farmsen-Berne": 35, "Bramfeld": 53, "Steilshoop": 20, "Wellingsbüttel": 11,
    "Sasel": 24, "Poppenbüttel": 25, "Hummelsbüttel": 19,
    "Lemsahl-Mellingstedt": 7, "Duvenstedt": 7, "Wohldorf-Ohlstedt": 5,
    "Bergstedt": 10, "Volksdorf": 20, "Rahlstedt": 93,
    # Bergedorf
    "Lohbrügge": 41, "Bergedorf": 36, "Curslack": 4, "Altengamme": 2,
    "Neuengamme": 4, "Kirchwerder": 10, "Ochsenwerder": 3, "Neuallermöhe": 24,
    # Harburg
    "Harburg": 27, "Neuland": 2, "Wilstorf": 18, "Rönneburg": 4, "Langenbek": 4,
    "Sinstorf": 4, "Marmstorf": 9, "Eißendorf": 25, "Heimfeld": 22,
    "Hausbruch": 17, "Neugraben-Fischbek": 33, "Neuenfelde": 5,
}

# Stadtteile where more services are offered in many languages (weights only).
MULTILINGUAL_HIGH = {
    "Billstedt", "Wilhelmsburg", "Veddel", "Harburg", "Jenfeld", "Steilshoop",
    "Lurup", "Osdorf", "Neuallermöhe", "Lohbrügge", "St. Georg", "Hamm", "Horn",
    "Rothenburgsort", "Dulsberg", "Neugraben-Fischbek", "Altona-Altstadt",
    "Eidelstedt", "Hammerbrook", "Heimfeld", "Rahlstedt", "Barmbek-Nord",
}
MULTILINGUAL_LOW = {
    "Blankenese", "Nienstedten", "Othmarschen", "Wohldorf-Ohlstedt", "Harvestehude",
    "Groß Flottbek", "Duvenstedt", "Lemsahl-Mellingstedt", "Sülldorf", "Volksdorf",
    "Curslack", "Altengamme", "Neuengamme", "Kirchwerder", "Ochsenwerder",
}

# Largest safe offset (m) around the anchor point for Stadtteile where the
# polygon boundary is closer than 600 m (0.9 x distance from the centroid to the
# boundary). Derived once from the LGV Stadtteil polygons
# (hamburg-district-regions.geojson, dl-de/by-2-0) during development, so that
# every demo point lies inside its Stadtteil; the generator itself only reads
# data/gazetteer/*.csv. All other Stadtteile use 600 m.
MAX_OFFSET_M = {
    "Hamburg-Altstadt": 300, "HafenCity": 310, "Neustadt": 360, "St. Pauli": 260,
    "St. Georg": 410, "Hammerbrook": 470, "Borgfelde": 360, "Rothenburgsort": 360,
    "Veddel": 510, "Altona-Altstadt": 520, "Sternschanze": 200, "Altona-Nord": 280,
    "Ottensen": 410, "Groß Flottbek": 470, "Nienstedten": 550, "Iserbrook": 420,
    "Eimsbüttel": 540, "Rotherbaum": 510, "Harvestehude": 500, "Hoheluft-West": 300,
    "Hoheluft-Ost": 280, "Eppendorf": 520, "Groß Borstel": 470, "Alsterdorf": 460,
    "Uhlenhorst": 350, "Hohenfelde": 350, "Barmbek-Süd": 500, "Dulsberg": 360,
    "Barmbek-Nord": 570, "Ohlsdorf": 460, "Eilbek": 440, "Marienthal": 370,
    "Tonndorf": 580, "Farmsen-Berne": 320, "Steilshoop": 530, "Wellingsbüttel": 550,
    "Hummelsbüttel": 570, "Lohbrügge": 410, "Neuengamme": 510,
    "Neuallermöhe": 510, "Harburg": 460, "Rönneburg": 450, "Langenbek": 300,
    "Sinstorf": 300, "Marmstorf": 480, "Eißendorf": 400, "Hausbruch": 410,
}
# Stadtteile whose centroid lies within ~200 m of their boundary (odd shapes):
# use an interior point (found the same way, 224 m / 316 m from the centroid)
# as the anchor instead; anchor + offset stays within 600 m of the centroid.
ANCHOR = {
    "Sternschanze": (53.561578, 9.962647),
    "Altona-Nord": (53.565909, 9.941048),
}

# German locative phrase for Stadtteile that take an article or "auf".
LOC_DE = {
    "HafenCity": "in der HafenCity",
    "Neustadt": "in der Neustadt",
    "Hamburg-Altstadt": "in der Hamburger Altstadt",
    "Sternschanze": "in der Sternschanze",
    "Veddel": "auf der Veddel",
}

# Language codes in taxonomy order and how often they are offered (besides de).
LANG_ORDER = ["de", "en", "ar", "fa", "uk", "tr", "ru", "pl", "fr", "es", "ku",
              "ps", "ti", "so", "ro", "bg", "sq", "it", "pt", "vi", "zh", "sr",
              "hr", "bs"]
LANG_BASE = {
    "en": 0.40, "ar": 0.20, "fa": 0.17, "uk": 0.16, "tr": 0.17, "ru": 0.06,
    "pl": 0.04, "fr": 0.05, "es": 0.04, "ro": 0.03, "bg": 0.03, "sq": 0.02,
    "it": 0.02, "pt": 0.02, "vi": 0.01, "zh": 0.01, "ti": 0.02, "so": 0.02,
}
# Languages that usually come together with another one:
# (language, required companions (any of), probability)
LANG_COMPANIONS = [
    ("ps", ("fa",), 0.35),          # Pashto with Dari/Persian (Afghanistan)
    ("ku", ("ar", "tr", "fa"), 0.15),
    ("ru", ("uk",), 0.30),
    ("ti", ("ar",), 0.08),
    ("so", ("ar",), 0.08),
]
P_BKS = 0.025  # Bosnian/Croatian/Serbian are usually offered together
# Categories that are more often multilingual / less often.
LANG_BOOST = {
    "newcomer_support": 1.8, "language_cafe": 1.6, "counselling": 1.4,
    "women": 1.4, "education": 1.4, "employment": 1.4, "family_centre": 1.3,
    "health": 1.3, "crisis_help": 1.3, "library": 1.3, "youth_centre": 1.1,
    "seniors": 0.6, "self_help": 0.7, "culture": 1.0, "sport_leisure": 0.9,
    "community_centre": 1.0, "support_group": 0.9, "lgbtq": 1.0,
}

HOURS = {
    "group": ["Mo 18:00-20:00", "Tu 18:30-20:30", "We 17:00-19:00",
              "Th 18:00-19:30", "We 10:00-12:00", "Fr 16:00-18:00",
              "Tu 10:00-11:30", "Th 10:00-12:00"],
    "office": ["Mo-Fr 09:00-17:00", "Mo-Fr 10:00-16:00; PH off",
               "Mo-Th 09:00-16:00; Fr 09:00-13:00", "Mo,We,Fr 10:00-13:00",
               "Tu 10:00-12:00; Th 14:00-17:00", "Mo-Fr 09:00-15:00; PH off",
               "Mo-Th 09:00-17:00"],
    "youth": ["Mo-Fr 14:00-20:00", "Mo-Fr 14:00-19:00; Sa 12:00-17:00",
              "Tu-Fr 15:00-20:00", "Mo-Th 14:00-19:00; Fr 14:00-21:00",
              "Tu,Th 15:00-18:00; Sa 10:00-13:00"],
    "family": ["Mo-Fr 09:00-13:00", "Mo-Fr 09:00-17:00; PH off",
               "Mo-Th 09:00-16:00; Fr 09:00-12:00",
               "Tu,Th 09:30-12:00; We 15:00-17:30"],
    "cafe": ["Tu 16:00-18:00", "We 15:00-17:00", "Th 17:00-19:00",
             "Sa 11:00-13:00", "Mo 10:00-12:00; Th 16:00-18:00",
             "Tu,Th 15:00-18:00"],
    "centre": ["Mo-Fr 10:00-18:00", "Mo-Fr 09:00-21:00; Sa 10:00-14:00",
               "Mo-Th 10:00-20:00; Fr 10:00-16:00", "Mo-Fr 10:00-18:00; PH off"],
    "library": ["Tu-Fr 11:00-19:00; Sa 10:00-14:00",
                "Mo-Fr 10:00-18:00; Sa 10:00-13:00", "Tu-Sa 11:00-18:00",
                "Mo,Tu,Th,Fr 11:00-18:00; Sa 10:00-14:00"],
    "course": ["Mo,We 09:00-12:00", "Tu,Th 18:00-20:00", "Mo-Fr 08:30-12:30",
               "Tu,Th 15:00-17:00", "Mo-Th 09:00-13:00"],
    "clinic": ["Mo,We 14:00-17:00", "Tu 09:00-12:00; Th 14:00-18:00",
               "Mo-Fr 09:00-12:00", "We 16:00-19:00"],
    "sport": ["Sa 10:00-12:00", "Su 14:00-16:00", "Tu,Th 17:00-19:00",
              "Mo 18:00-20:00", "We 16:00-18:00; Sa 11:00-13:00"],
    "culture": ["We 18:00-20:30", "Th 19:00-21:00", "Sa 14:00-17:00",
                "Su 15:00-18:00", "Tu-Sa 11:00-18:00"],
    "crisis_office": ["Mo-Fr 08:00-20:00; Sa,Su 10:00-18:00",
                      "Mo-Fr 09:00-18:00; PH off"],
    "senior": ["Mo-Fr 10:00-16:00", "Tu,Th 14:00-17:00", "We 12:00-14:00",
               "Mo,We 14:00-17:00"],
    "247": ["24/7"],
}

# Templates per category:
# (name stem, extra categories, audiences, hours key, description de, description en,
#  options). {loc} -> German locative ("in Lurup"), {st} -> Stadtteil name.
# options: langs=[...] fixed language list, cost=..., confidential=True
T = {
    "support_group": [
        ("Gesprächsgruppe Trauer", ["health"], ["everyone"], "group",
         "Begleitete Gesprächsgruppe für Menschen, die einen nahestehenden Menschen verloren haben. Treffen alle zwei Wochen {loc}, ein Einstieg ist jederzeit möglich.",
         "Facilitated group for people who have lost someone close to them. Meets every two weeks in {st}; you can join at any time.", {}),
        ("Gesprächsgruppe für Alleinerziehende", ["family_centre"], ["parents", "families"], "group",
         "Austausch und gegenseitige Unterstützung für alleinerziehende Mütter und Väter {loc}. Kinderbetreuung während des Treffens ist möglich.",
         "Sharing and mutual support for single mothers and fathers in {st}. Childcare is available during the meetings.", {}),
        ("Gesprächsgruppe für Angehörige psychisch erkrankter Menschen", ["health"], ["everyone"], "group",
         "Angeleitete Gruppe für Angehörige von Menschen mit psychischen Erkrankungen {loc}. Hier können Sie Sorgen teilen und Entlastung finden.",
         "Facilitated group for relatives of people with mental illness in {st}. A place to share worries and find relief.", {}),
        ("Gesprächsgruppe nach Flucht", ["newcomer_support", "health"], ["newcomers"], "group",
         "Begleitete Gruppe für Menschen mit Fluchterfahrung {loc}. Gespräche über Ankommen, Heimweh und Belastungen, mit Sprachmittlung.",
         "Facilitated group for people who have fled their home country, in {st}. Talks about arriving, homesickness and stress, with interpreters.",
         {"include": ["de", "ar", "fa"]}),
        ("Gesprächsgruppe für pflegende Angehörige", ["seniors", "health"], ["everyone", "seniors"], "group",
         "Monatliche Gruppe {loc} für Menschen, die Angehörige pflegen: Austausch, Entlastung und Hinweise auf weitere Hilfen.",
         "Monthly group in {st} for people caring for a family member: sharing, relief and pointers to further help.", {}),
        ("Gesprächsgruppe gegen Einsamkeit", [], ["everyone"], "group",
         "Offene, begleitete Runde {loc} für alle, die sich einsam fühlen. Ohne Anmeldung, Tee und Gebäck inklusive.",
         "Open facilitated circle for anyone feeling lonely in {st}. No registration needed; tea and biscuits provided.", {}),
        ("Ukrainischsprachige Gesprächsgruppe", ["newcomer_support"], ["newcomers", "women"], "group",
         "Begleitete Gesprächsgruppe auf Ukrainisch für Menschen, die wegen des Krieges nach Hamburg gekommen sind. Treffen wöchentlich {loc}.",
         "Facilitated group in Ukrainian for people who came to Hamburg because of the war. Meets weekly in {st}.",
         {"langs": ["uk"]}),
        ("Gesprächsgruppe für Eltern von Kindern mit Behinderung", ["family_centre"], ["parents"], "group",
         "Begleiteter Austausch für Eltern von Kindern mit Behinderung {loc}. Themen sind Alltag, Anträge und Kraftquellen.",
         "Facilitated exchange for parents of children with disabilities in {st}. Topics include daily life, applications and finding strength.", {}),
        ("Türkischsprachige Gesprächsgruppe für pflegende Angehörige", ["seniors"], ["everyone", "seniors"], "group",
         "Begleitete Gruppe auf Türkisch und Deutsch für Menschen, die Angehörige pflegen. Treffen einmal im Monat {loc}.",
         "Facilitated group in Turkish and German for people caring for a family member. Meets once a month in {st}.",
         {"langs": ["tr", "de"]}),
    ],
    "self_help": [
        ("Selbsthilfegruppe Trauer", ["support_group"], ["everyone"], "group",
         "Selbsthilfegruppe für trauernde Menschen {loc}. Die Gruppe organisiert sich selbst, neue Teilnehmende sind willkommen.",
         "Self-help group for people who are grieving, in {st}. The group is run by its members; newcomers are welcome.", {}),
        ("Selbsthilfegruppe Leben ohne Alkohol", ["health"], ["everyone"], "group",
         "Wöchentliches Treffen {loc} für Menschen, die ohne Alkohol leben wollen. Vertraulich und ohne Anmeldung.",
         "Weekly meeting for people who want to live without alcohol, in {st}. Confidential, no registration needed.", {}),
        ("Selbsthilfegruppe Angst und Panik", ["health"], ["everyone"], "group",
         "Austausch von Betroffenen für Betroffene mit Angst- und Panikstörungen {loc}.",
         "Peer group for people living with anxiety and panic attacks, in {st}.", {}),
        ("Selbsthilfegruppe Depression", ["health"], ["everyone"], "group",
         "Offene Selbsthilfegruppe für Menschen mit Depressionen {loc}. Gemeinsam Wege finden, mit der Erkrankung zu leben.",
         "Open self-help group for people with depression in {st}. Finding ways together to live with the illness.", {}),
        ("Selbsthilfegruppe Long Covid", ["health"], ["everyone"], "group",
         "Selbsthilfegruppe für Menschen mit Long Covid und ihre Angehörigen {loc}. Erfahrungsaustausch und Informationen.",
         "Self-help group for people with long COVID and their relatives in {st}. Sharing experiences and information.", {}),
        ("Selbsthilfegruppe Chronische Schmerzen", ["health"], ["everyone", "seniors"], "group",
         "Betroffene tauschen sich {loc} und einmal im Monat online über den Alltag mit chronischen Schmerzen aus.",
         "People living with chronic pain share their experiences, in {st} and once a month online.", {}),
        ("Selbsthilfegruppe Glücksspiel", ["health"], ["everyone", "men"], "group",
         "Selbsthilfegruppe für Menschen mit Glücksspielproblemen und ihre Angehörigen {loc}.",
         "Self-help group for people with gambling problems and their families in {st}.", {}),
        ("Selbsthilfegruppe für Mütter nach der Geburt", ["family_centre", "health"], ["parents", "women"], "group",
         "Mütter mit Erschöpfung oder Niedergeschlagenheit nach der Geburt unterstützen sich gegenseitig {loc}. Babys dürfen mitkommen.",
         "Mothers experiencing exhaustion or low mood after giving birth support each other in {st}. Babies are welcome.", {}),
        ("Farsisprachige Selbsthilfegruppe für Frauen", ["women"], ["women", "newcomers"], "group",
         "Selbsthilfegruppe auf Farsi und Dari für Frauen {loc}. Ein geschützter Raum zum Reden und Zuhören.",
         "Self-help group in Farsi and Dari for women in {st}. A safe space to talk and listen.",
         {"langs": ["fa", "de"]}),
    ],
    "counselling": [
        ("Sozialberatung", [], ["everyone"], "office",
         "Kostenlose Beratung {loc} zu Sozialleistungen, Wohngeld, Anträgen und Briefen von Behörden. Termine und offene Sprechstunde.",
         "Free advice in {st} on social benefits, housing allowance, applications and letters from authorities. Appointments and drop-in hours.", {}),
        ("Migrationsberatung", ["newcomer_support"], ["newcomers"], "office",
         "Beratung {loc} für Zugewanderte zu Aufenthalt, Familiennachzug, Sprachkursen und Arbeit.",
         "Advice for migrants on residence, family reunification, language courses and work, in {st}.", {}),
        ("Erziehungsberatung", ["family_centre"], ["parents", "families", "youth"], "office",
         "Vertrauliche Beratung {loc} für Eltern, Kinder und Jugendliche bei Sorgen in der Familie.",
         "Confidential counselling for parents, children and young people facing difficulties at home, in {st}.", {}),
        ("Schuldnerberatung", [], ["everyone"], "office",
         "Hilfe bei Schulden {loc}: Überblick verschaffen, mit Gläubigern verhandeln, Wege aus der Überschuldung finden.",
         "Help with debt: getting an overview, negotiating with creditors and finding a way out, in {st}.", {}),
        ("Psychosoziale Beratung", ["health"], ["everyone"], "office",
         "Gespräche bei seelischer Belastung, Stress und Lebenskrisen {loc}. Kurzfristige Termine, auf Wunsch mit Sprachmittlung.",
         "Counselling for emotional strain, stress and life crises in {st}. Short-notice appointments, interpreters on request.", {}),
        ("Mieterberatung", [], ["everyone"], "office",
         "Beratung {loc} bei Fragen zu Mietvertrag, Nebenkosten und drohendem Wohnungsverlust.",
         "Advice on tenancy agreements, service charges and the risk of losing your home, in {st}.", {}),
        ("Jugendberatung", ["youth_centre"], ["youth"], "office",
         "Anonyme Beratung für junge Menschen zwischen 14 und 27 Jahren {loc} – zu Schule, Familie, Liebe oder Geld.",
         "Anonymous counselling for young people aged 14 to 27 in {st} – about school, family, relationships or money.", {}),
        ("Beratung für Geflüchtete", ["newcomer_support"], ["newcomers", "families"], "office",
         "Unabhängige Beratung {loc} für geflüchtete Menschen zu Asylverfahren, Unterbringung und ihren Rechten.",
         "Independent advice for refugees on asylum procedures, accommodation and their rights, in {st}.", {}),
        ("Paar- und Familienberatung", ["family_centre"], ["families", "parents"], "office",
         "Beratung {loc} für Paare und Familien in Konfliktsituationen, bei Trennung und Scheidung.",
         "Counselling for couples and families in conflict, separation or divorce, in {st}.", {}),
    ],
    "crisis_help": [
        # The first template is the confidential shelter type (used N_CONFIDENTIAL times).
        ("Schutzwohnung für Frauen und Kinder", ["women"], ["women", "children"], "247",
         "Geschützte Unterkunft für Frauen und ihre Kinder, die von Gewalt betroffen sind. Die Adresse ist vertraulich; Aufnahme rund um die Uhr über das Telefon.",
         "Safe accommodation for women and their children affected by violence. The address is confidential; admission around the clock by phone.",
         {"confidential": True, "cost": "free"}),
        ("Krisentelefon", ["counselling", "health"], ["everyone"], "247",
         "Telefonische Hilfe rund um die Uhr bei seelischen Krisen, auf Wunsch anonym. Die Beratungsstelle hat ihren Sitz {loc}.",
         "Phone help around the clock in emotional crises, anonymous if you wish. The service is based in {st}.",
         {"cost": "free"}),
        ("Kinder- und Jugendnotdienst", ["youth_centre"], ["children", "youth", "parents"], "247",
         "Anlaufstelle rund um die Uhr für Kinder und Jugendliche in Not und für besorgte Eltern {loc}.",
         "Round-the-clock help for children and young people in need and for worried parents, in {st}.",
         {"cost": "free"}),
        ("Beratungsstelle nach Gewalt", ["counselling", "women"], ["women", "everyone"], "crisis_office",
         "Schnelle und vertrauliche Unterstützung {loc} nach häuslicher oder sexualisierter Gewalt, auch ohne Anzeige.",
         "Fast, confidential support after domestic or sexual violence in {st}, also without reporting to the police.",
         {"cost": "free"}),
        ("Psychiatrischer Krisendienst", ["health"], ["everyone"], "crisis_office",
         "Soforthilfe {loc} bei akuten psychischen Krisen, mit Gesprächen vor Ort und Hausbesuchen.",
         "Immediate help in acute mental health crises, with talks on site and home visits, in {st}.",
         {"cost": "free"}),
        ("Notschlafstelle", [], ["everyone"], "247",
         "Notübernachtung für Menschen ohne Wohnung {loc}, mit warmer Mahlzeit und Beratung am Morgen.",
         "Emergency overnight shelter for people without a home in {st}, with a hot meal and advice in the morning.",
         {"cost": "free"}),
    ],
    "youth_centre": [
        ("Jugendtreff", [], ["youth"], "youth",
         "Offener Treff für Jugendliche ab 12 Jahren {loc} mit Billard, Musikraum, Küche und Hausaufgabenhilfe.",
         "Drop-in centre for young people aged 12 and over in {st} with pool table, music room, kitchen and homework help.", {}),
        ("Kinder- und Jugendtreff", [], ["children", "youth"], "youth",
         "Spielen, Kochen, Basteln und Ausflüge für Kinder und Jugendliche von 6 bis 18 Jahren {loc}.",
         "Games, cooking, crafts and outings for children and young people aged 6 to 18 in {st}.", {}),
        ("Mädchentreff", ["women"], ["youth", "children"], "youth",
         "Geschützter Raum nur für Mädchen und junge Frauen {loc}: Reden, Tanzen, Projekte und Beratung.",
         "A safe space just for girls and young women in {st}: talking, dancing, projects and advice.", {}),
        ("Jugendcafé", ["culture"], ["youth"], "youth",
         "Jugendcafé mit Bandproberaum, Konzerten und offenen Angeboten für junge Leute {loc}.",
         "Youth café with band rehearsal room, concerts and open activities for young people in {st}.", {}),
        ("Offener Kindertreff", ["family_centre"], ["children"], "youth",
         "Nachmittags spielen, toben und Hausaufgaben machen – für Kinder von 6 bis 12 Jahren {loc}.",
         "Afternoon play, games and homework for children aged 6 to 12 in {st}.", {}),
        ("Jugendzentrum", ["sport_leisure"], ["youth"], "youth",
         "Großes Jugendzentrum {loc} mit Sporthalle, Werkstatt, Medienraum und Ansprechpersonen für alle Sorgen.",
         "Large youth centre in {st} with sports hall, workshop, media room and staff to talk to about any worries.", {}),
    ],
    "family_centre": [
        ("Familienzentrum", ["counselling"], ["families", "parents", "children"], "family",
         "Treffpunkt für Familien {loc} mit Elterncafé, Krabbelgruppen, Beratung und Familienfrühstück.",
         "Meeting place for families in {st} with parents' café, toddler groups, advice and family breakfast.", {}),
        ("Eltern-Kind-Treff", [], ["parents", "children"], "family",
         "Offene Eltern-Kind-Gruppen für Familien mit Kindern bis drei Jahren {loc}, ohne Anmeldung.",
         "Open parent-and-toddler groups for families with children up to three years old in {st}; no registration.", {}),
        ("Familiencafé", ["community_centre"], ["families"], "family",
         "Gemütliches Café für Familien {loc} mit Spielecke, günstigem Mittagstisch und Beratung bei Bedarf.",
         "Cosy café for families in {st} with a play corner, low-cost lunch and advice when needed.", {}),
        ("Elterntreff", ["counselling"], ["parents"], "family",
         "Gesprächsrunden und Kurse für Eltern {loc} zu Erziehung, Schule und Mediennutzung.",
         "Discussion groups and courses for parents in {st} on parenting, school and media use.", {}),
        ("Familienzentrum mit Hebammensprechstunde", ["health"], ["families", "parents", "women"], "family",
         "Familienzentrum {loc} mit offener Hebammensprechstunde, Babymassage und Stillberatung.",
         "Family centre in {st} with drop-in midwife hours, baby massage and breastfeeding advice.", {}),
    ],
    "language_cafe": [
        ("Sprachcafé", [], ["everyone", "newcomers"], "cafe",
         "Deutsch sprechen üben in entspannter Runde {loc}. Ehrenamtliche begleiten die Gespräche, alle Niveaus willkommen.",
         "Practise speaking German in a relaxed group in {st}. Volunteers guide the conversation; all levels welcome.", {}),
        ("Sprachtreff Deutsch", ["newcomer_support"], ["newcomers"], "cafe",
         "Wöchentlicher Sprachtreff {loc} für Menschen, die Deutsch lernen, mit Themen aus dem Alltag.",
         "Weekly language meet-up in {st} for people learning German, with everyday topics.", {}),
        ("Sprachtandem-Café", ["culture"], ["everyone"], "cafe",
         "Sprachpartnerschaften finden und gemeinsam üben {loc} – Deutsch, Arabisch, Ukrainisch und mehr.",
         "Find a language partner and practise together in {st} – German, Arabic, Ukrainian and more.",
         {"include": ["de", "ar", "uk"]}),
        ("Sprachcafé für Frauen", ["women"], ["women", "newcomers"], "cafe",
         "Deutsch üben unter Frauen {loc}, mit Kinderbetreuung während des Treffens.",
         "Practise German with other women in {st}, with childcare during the meeting.", {}),
        ("Sprachcafé für Eltern", ["family_centre"], ["parents", "newcomers"], "cafe",
         "Deutsch für den Familienalltag: Kita, Schule, Arztbesuch. Treffen {loc}, Kinder sind willkommen.",
         "German for family life: day care, school, doctor's visits. Meets in {st}; children are welcome.", {}),
    ],
    "newcomer_support": [
        ("Willkommenstreff", ["community_centre"], ["newcomers"], "cafe",
         "Offener Treff für neu Angekommene {loc}: Fragen stellen, Kontakte knüpfen, Hilfe bei Formularen.",
         "Drop-in meeting for people who have just arrived, in {st}: ask questions, meet people, get help with forms.", {}),
        ("Anlaufstelle für Neuzugewanderte", ["counselling"], ["newcomers", "families"], "office",
         "Erste Orientierung {loc} zu Anmeldung, Krankenversicherung, Schule und Kita, in mehreren Sprachen.",
         "First orientation in {st} on registration, health insurance, school and day care, in several languages.",
         {"include": ["de", "en", "ar"]}),
        ("Begleitung zu Behörden", ["counselling"], ["newcomers"], "office",
         "Ehrenamtliche {loc} begleiten zu Ämtern, Arztpraxen oder Wohnungsbesichtigungen und helfen beim Übersetzen.",
         "Volunteers accompany you to public offices, doctors or flat viewings in {st} and help with translation.", {}),
        ("Patenschaftsprojekt", ["language_cafe"], ["newcomers", "families"], "office",
         "Vermittlung von Patenschaften {loc} zwischen Neuzugewanderten und Menschen aus der Nachbarschaft.",
         "Matching newcomers with local mentors in {st}.", {}),
        ("Arabischsprachige Sprechstunde", ["counselling"], ["newcomers"], "office",
         "Beratung {loc} auf Arabisch und Deutsch zu Alltag, Behörden und Familie.",
         "Advice in Arabic and German on daily life, authorities and family matters, in {st}.",
         {"langs": ["ar", "de"]}),
        ("Ankommenstreff für Familien aus der Ukraine", ["family_centre"], ["newcomers", "families"], "cafe",
         "Treffpunkt für Familien aus der Ukraine {loc} mit Beratung, Spielgruppe und Austausch.",
         "Meeting place for families from Ukraine in {st} with advice, a play group and exchange.",
         {"langs": ["uk", "de", "ru"]}),
    ],
    "community_centre": [
        ("Stadtteilzentrum", ["culture"], ["everyone"], "centre",
         "Offenes Haus für alle {loc}: Kurse, Feste, Räume für Gruppen und ein Café.",
         "An open house for everyone in {st}: courses, celebrations, rooms for groups and a café.", {}),
        ("Nachbarschaftstreff", [], ["everyone"], "centre",
         "Treffpunkt für Nachbarinnen und Nachbarn {loc} mit Mittagstisch, Tauschregal und Beratungszeiten.",
         "Meeting point for neighbours in {st} with lunch, a swap shelf and advice hours.", {}),
        ("Interkulturelles Begegnungshaus", ["culture", "newcomer_support"], ["everyone", "newcomers"], "centre",
         "Begegnung über Sprachen und Kulturen hinweg {loc}: Kochabende, Feste, Gruppen und Beratung.",
         "Meeting across languages and cultures in {st}: cooking evenings, celebrations, groups and advice.", {}),
        ("Gemeinschaftshaus", ["sport_leisure"], ["everyone", "families"], "centre",
         "Gemeinschaftshaus {loc} mit Werkstatt, Gemeinschaftsgarten und offenen Angeboten für alle Generationen.",
         "Community house in {st} with a workshop, community garden and open activities for all generations.", {}),
        ("Mehrgenerationentreff", ["seniors"], ["everyone", "seniors", "families"], "centre",
         "Alt und Jung begegnen sich {loc}: Erzählcafé, Lernpatenschaften und gemeinsames Kochen.",
         "Young and old meet in {st}: storytelling café, learning buddies and cooking together.", {}),
    ],
    "library": [
        ("Stadtteilbibliothek", ["education"], ["everyone"], "library",
         "Bibliothek {loc} mit Büchern und Medien in vielen Sprachen, kostenlosem WLAN und Lernplätzen.",
         "Library in {st} with books and media in many languages, free Wi-Fi and study spaces.", {"cost": "reduced"}),
        ("Mehrsprachige Kinderbibliothek", ["family_centre"], ["children", "families"], "library",
         "Kinderbücher in über zwanzig Sprachen und Vorlesestunden {loc}, auch auf Arabisch, Farsi und Ukrainisch.",
         "Children's books in over twenty languages and story times in {st}, also in Arabic, Farsi and Ukrainian.",
         {"cost": "free", "include": ["de", "en", "ar", "fa", "uk", "tr"]}),
        ("Leseclub", ["youth_centre"], ["children", "youth"], "library",
         "Leseclub für Kinder von 8 bis 14 Jahren {loc} mit Büchern, Tablets und Hörspielen.",
         "Reading club for children aged 8 to 14 in {st} with books, tablets and audio plays.", {"cost": "free"}),
        ("Bücherstube mit Lerncafé", ["education", "community_centre"], ["everyone"], "library",
         "Kleine Bibliothek {loc} mit Lerncafé, Hilfe am Computer und Sprachlernmaterial.",
         "Small library in {st} with a study café, computer help and language learning materials.", {"cost": "free"}),
    ],
    "education": [
        ("Deutschkurs mit Kinderbetreuung", ["women", "language_cafe"], ["women", "newcomers", "parents"], "course",
         "Deutschkurs für Mütter {loc} mit Kinderbetreuung im Nebenraum, von A1 bis B1.",
         "German course for mothers in {st} with childcare next door, levels A1 to B1.", {}),
        ("Alphabetisierungskurs", [], ["newcomers", "everyone"], "course",
         "Lesen und Schreiben lernen in kleinen Gruppen {loc}, für Erwachsene jeden Alters.",
         "Learn to read and write in small groups in {st}, for adults of all ages.", {}),
        ("Hausaufgabenhilfe", ["youth_centre"], ["children", "youth"], "course",
         "Kostenlose Hausaufgabenhilfe und Nachhilfe {loc} für Schülerinnen und Schüler der Klassen 1 bis 10.",
         "Free homework help and tutoring in {st} for pupils in years 1 to 10.", {"cost": "free"}),
        ("Lernwerkstatt", ["employment"], ["youth", "newcomers"], "course",
         "Vorbereitung auf Schulabschlüsse und Prüfungen {loc} für Jugendliche und junge Erwachsene.",
         "Preparation for school-leaving qualifications and exams in {st} for young people and young adults.", {}),
        ("Computerkurs für Einsteiger", ["seniors"], ["everyone", "seniors"], "course",
         "Erste Schritte mit Computer und Smartphone {loc}: E-Mail, Online-Formulare, sicher im Internet.",
         "First steps with computers and smartphones in {st}: e-mail, online forms, staying safe online.", {}),
        ("Integrationskurs-Beratung", ["newcomer_support", "counselling"], ["newcomers"], "office",
         "Beratung zu Integrations- und Deutschkursen {loc}: welcher Kurs passt, Kostenübernahme, Anmeldung.",
         "Advice on integration and German courses in {st}: which course fits, cost coverage, enrolment.", {"cost": "free"}),
    ],
    "employment": [
        ("Jobcafé", ["counselling"], ["everyone", "newcomers"], "cafe",
         "Offene Sprechstunde {loc} für Fragen rund um Jobsuche, Lebenslauf und Bewerbung.",
         "Drop-in hours in {st} for questions about job hunting, CVs and applications.", {}),
        ("Bewerbungswerkstatt", ["education"], ["youth", "everyone"], "course",
         "Gemeinsam Bewerbungen schreiben und Vorstellungsgespräche üben {loc}, mit Computerplätzen.",
         "Write applications together and practise job interviews in {st}, with computers available.", {}),
        ("Beratung zur Anerkennung ausländischer Abschlüsse", ["counselling", "newcomer_support"], ["newcomers"], "office",
         "Beratung {loc} zur Anerkennung von Berufs- und Studienabschlüssen aus dem Ausland.",
         "Advice in {st} on getting vocational and university qualifications from abroad recognised.", {}),
        ("Ausbildungslotsen", ["youth_centre", "education"], ["youth"], "office",
         "Begleitung für junge Menschen auf dem Weg in eine Ausbildung {loc}, von der Berufswahl bis zum Vertrag.",
         "Support for young people on their way into vocational training in {st}, from choosing a job to signing the contract.", {}),
        ("Berufsorientierung für Frauen", ["women"], ["women", "newcomers"], "course",
         "Kurs zur beruflichen Orientierung für Frauen {loc}, mit Praktikumsvermittlung und Kinderbetreuung.",
         "Career orientation course for women in {st}, with internship placements and childcare.", {}),
    ],
    "health": [
        ("Gesundheitssprechstunde ohne Versicherung", ["counselling"], ["everyone", "newcomers"], "clinic",
         "Anonyme medizinische Sprechstunde für Menschen ohne Krankenversicherung {loc}.",
         "Anonymous medical consultation for people without health insurance in {st}.", {"cost": "free"}),
        ("Psychosoziale Sprechstunde", ["counselling"], ["everyone"], "clinic",
         "Erste Gespräche bei seelischer Belastung und Vermittlung in Therapie {loc}, auch mit Sprachmittlung.",
         "First talks if you are under emotional strain and referral to therapy in {st}, also with interpreters.", {}),
        ("Hebammensprechstunde", ["family_centre"], ["women", "parents", "families"], "clinic",
         "Offene Sprechstunde für Schwangere und junge Familien {loc}, ohne Termin.",
         "Drop-in consultation for pregnant women and young families in {st}, no appointment needed.", {"cost": "free"}),
        ("Gesundheitstreff", ["seniors", "sport_leisure"], ["everyone", "seniors"], "clinic",
         "Vorträge, Bewegungsangebote und Gesundheitsberatung für alle Generationen {loc}.",
         "Talks, exercise sessions and health advice for all generations in {st}.", {}),
        ("Mehrsprachige Gesundheitslotsen", ["newcomer_support"], ["newcomers", "families"], "office",
         "Geschulte Lotsinnen und Lotsen erklären {loc} das Gesundheitssystem in vielen Sprachen.",
         "Trained guides in {st} explain the German health system in many languages.",
         {"cost": "free", "include": ["de", "en", "ar", "fa", "tr", "uk", "ru"]}),
    ],
    "sport_leisure": [
        ("Offener Fußballtreff", ["youth_centre"], ["youth", "everyone"], "sport",
         "Fußball ohne Vereinsmitgliedschaft {loc}: einfach vorbeikommen und mitspielen.",
         "Football without club membership in {st}: just come along and join in.", {"cost": "free"}),
        ("Schwimmkurs für Frauen", ["women"], ["women"], "sport",
         "Schwimmen lernen in einer reinen Frauengruppe {loc}, mit weiblichen Trainerinnen.",
         "Learn to swim in a women-only group in {st}, with female instructors.", {}),
        ("Lauftreff", ["health"], ["everyone"], "sport",
         "Gemeinsam laufen in gemütlichem Tempo {loc}, für Anfängerinnen und Anfänger geeignet.",
         "Running together at an easy pace in {st}; suitable for beginners.", {"cost": "free"}),
        ("Fahrradwerkstatt", ["community_centre"], ["everyone", "newcomers"], "sport",
         "Selbsthilfe-Fahrradwerkstatt {loc}: Räder gemeinsam reparieren, Werkzeug wird gestellt.",
         "Do-it-yourself bike workshop in {st}: repair bikes together, tools provided.", {}),
        ("Spielenachmittag", ["community_centre"], ["everyone", "families", "seniors"], "sport",
         "Brett- und Kartenspiele für alle Generationen {loc}, ohne Anmeldung.",
         "Board and card games for all generations in {st}, no registration.", {"cost": "free"}),
        ("Gemeinschaftsgarten", ["community_centre", "health"], ["everyone", "families"], "sport",
         "Gemeinsam gärtnern, ernten und draußen sein {loc} – Erfahrung nicht nötig.",
         "Gardening, harvesting and being outdoors together in {st} – no experience needed.", {"cost": "free"}),
    ],
    "culture": [
        ("Interkultureller Chor", ["community_centre"], ["everyone"], "culture",
         "Chor mit Liedern aus vielen Ländern {loc}, Noten lesen ist nicht nötig.",
         "Choir singing songs from many countries in {st}; no need to read music.", {}),
        ("Theaterwerkstatt", ["youth_centre"], ["youth", "everyone"], "culture",
         "Theater spielen und eigene Geschichten auf die Bühne bringen {loc}, mehrsprachig.",
         "Act and bring your own stories to the stage in {st}, in several languages.", {}),
        ("Offenes Atelier", ["health"], ["everyone"], "culture",
         "Malen, Zeichnen und Gestalten in offener Runde {loc}, Material ist vorhanden.",
         "Painting, drawing and making art in an open group in {st}; materials provided.", {}),
        ("Erzählcafé", ["seniors", "community_centre"], ["everyone", "seniors"], "culture",
         "Lebensgeschichten teilen und zuhören {loc} – Erinnerungen aus Hamburg und aus aller Welt.",
         "Share and listen to life stories in {st} – memories from Hamburg and around the world.", {}),
        ("Kochtreff der Kulturen", ["community_centre"], ["everyone", "families"], "culture",
         "Gemeinsam Rezepte aus verschiedenen Ländern kochen und essen {loc}.",
         "Cook and eat recipes from different countries together in {st}.", {"cost": "reduced"}),
    ],
    "women": [
        ("Frauencafé", ["community_centre"], ["women"], "cafe",
         "Treffpunkt nur für Frauen {loc} mit Gesprächen, Kursen und Beratung, Kinderbetreuung möglich.",
         "Women-only meeting place in {st} with conversations, courses and advice; childcare available.", {}),
        ("Frauentreff", ["newcomer_support"], ["women", "newcomers"], "cafe",
         "Offener Treff für Frauen aus aller Welt {loc}: Austausch, Ausflüge und Unterstützung im Alltag.",
         "Open meeting for women from all over the world in {st}: exchange, outings and everyday support.", {}),
        ("Beratung für Frauen", ["counselling"], ["women"], "office",
         "Vertrauliche Beratung von Frauen für Frauen {loc} zu Trennung, Gewalt, Geld und Aufenthalt.",
         "Confidential counselling by women for women in {st} on separation, violence, money and residence status.", {"cost": "free"}),
        ("Mütterfrühstück", ["family_centre"], ["women", "parents"], "family",
         "Gemeinsames Frühstück für Mütter mit kleinen Kindern {loc}, mit Spielecke.",
         "Breakfast together for mothers with young children in {st}, with a play corner.", {}),
        ("Frauengesundheitstreff", ["health"], ["women"], "clinic",
         "Informationen und Gespräche zu Frauengesundheit {loc}, mit Ärztin und Sprachmittlerinnen.",
         "Information and talks on women's health in {st}, with a female doctor and interpreters.", {"cost": "free"}),
        ("Frauentreff auf Farsi und Dari", ["support_group"], ["women", "newcomers"], "cafe",
         "Wöchentlicher Treff für Frauen aus Afghanistan und Iran {loc} – Austausch, Beratung und gemeinsame Ausflüge.",
         "Weekly meeting for women from Afghanistan and Iran in {st} – exchange, advice and outings together.",
         {"langs": ["fa", "ps", "de"]}),
    ],
    "lgbtq": [
        ("Queerer Jugendtreff", ["youth_centre"], ["lgbtq", "youth"], "youth",
         "Treffpunkt für queere Jugendliche von 14 bis 27 Jahren {loc} – einfach so sein, wie du bist.",
         "Meeting place for LGBTQ+ young people aged 14 to 27 in {st} – just be who you are.", {}),
        ("Queer-Café", ["community_centre"], ["lgbtq", "everyone"], "cafe",
         "Offenes Café {loc} für queere Menschen und alle, die sich solidarisch zeigen wollen.",
         "Open café for LGBTQ+ people and their allies in {st}.", {}),
        ("Beratung für queere Geflüchtete", ["counselling", "newcomer_support"], ["lgbtq", "newcomers"], "office",
         "Vertrauliche Beratung für queere Geflüchtete {loc}, zu Asyl, Unterbringung und Sicherheit.",
         "Confidential advice for LGBTQ+ refugees in {st} on asylum, accommodation and safety.", {"cost": "free"}),
        ("Regenbogenfamilien-Treff", ["family_centre"], ["lgbtq", "families", "parents"], "family",
         "Austausch und Freizeit für Regenbogenfamilien und Menschen mit Kinderwunsch {loc}.",
         "Exchange and leisure for rainbow families and people hoping to have children in {st}.", {}),
        ("Queere Gesprächsgruppe", ["support_group"], ["lgbtq"], "group",
         "Begleitete Gesprächsgruppe zu Coming-out, Identität und Alltag {loc}.",
         "Facilitated group on coming out, identity and everyday life in {st}.", {}),
    ],
    "seniors": [
        ("Seniorentreff", ["community_centre"], ["seniors"], "senior",
         "Treffpunkt für ältere Menschen {loc} mit Kaffee, Gymnastik, Ausflügen und Gesprächen.",
         "Meeting place for older people in {st} with coffee, gentle exercise, outings and conversation.", {}),
        ("Seniorencafé", ["culture"], ["seniors"], "senior",
         "Gemütliches Café für Ältere {loc} mit Vorträgen, Musik und Spielen.",
         "Cosy café for older people in {st} with talks, music and games.", {"cost": "reduced"}),
        ("Besuchsdienst für Ältere", ["support_group"], ["seniors"], "office",
         "Ehrenamtliche besuchen ältere, alleinlebende Menschen {loc} zu Hause – für Gespräche, Spaziergänge und Vorlesen.",
         "Volunteers visit older people who live alone in {st} – for conversation, walks and reading aloud.", {"cost": "free"}),
        ("Computerhilfe für Ältere", ["education"], ["seniors"], "senior",
         "Geduldige Hilfe bei Smartphone, Tablet und Computer für ältere Menschen {loc}.",
         "Patient help with smartphones, tablets and computers for older people in {st}.", {"cost": "free"}),
        ("Mittagstisch für Ältere", ["community_centre"], ["seniors"], "senior",
         "Günstiger Mittagstisch {loc} für Seniorinnen und Senioren – gemeinsam statt allein essen.",
         "Low-cost shared lunch with company for older people in {st}.", {"cost": "reduced"}),
    ],
}

STREETS = ["Beispielweg", "Musterstraße", "Demoallee", "Beispielstraße", "Musterweg",
           "Demoweg", "Beispielplatz", "Musterallee", "Demostraße", "Platzhalterweg"]

# Organisations: five themes per Bezirk + five citywide ones (= 40).
ORG_THEMES = [
    ("Nachbarschaftsarbeit", "neighbourhood work",
     ["community_centre", "language_cafe", "culture", "seniors", "sport_leisure"]),
    ("Kinder, Jugend und Familie", "children, youth and families",
     ["youth_centre", "family_centre", "education"]),
    ("Beratung und Migration", "advice and migration",
     ["counselling", "newcomer_support", "employment", "language_cafe", "education"]),
    ("Gesundheit und Selbsthilfe", "health and self-help",
     ["support_group", "self_help", "health", "counselling"]),
    ("Frauen, Vielfalt und Kultur", "women, diversity and culture",
     ["women", "lgbtq", "culture"]),
]
ORG_CITYWIDE = [
    ("Krisenhilfe Hamburg", "crisis support", ["crisis_help", "counselling"]),
    ("Lesen und Medien Hamburg", "reading and media", ["library"]),
    ("Queere Projekte Hamburg", "LGBTQ+ projects", ["lgbtq", "support_group"]),
    ("Arbeit und Ausbildung Hamburg", "work and training", ["employment", "education"]),
    ("Sport für alle Hamburg", "sport for everyone", ["sport_leisure"]),
]

NOTICE = ("DEMO DATA – FICTIONAL. These listings were invented for testing and "
          "demonstrating mapservice. They are not real services: do not visit, call "
          "or write to them. Names, organisations, addresses, phone numbers (Hamburg "
          "range reserved for media productions), e-mail addresses and websites "
          "(example.org) are made up; positions are only approximate Stadtteil "
          "locations. / DEMO-DATEN – FIKTIV. Diese Einträge sind erfunden und keine "
          "echten Angebote.")


def slugify(text):
    repl = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue"}
    out = []
    for ch in text:
        ch = repl.get(ch, ch)
        for c in ch.lower():
            out.append(c if c.isascii() and c.isalnum() else "-")
    slug = "".join(out)
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")


def haversine_m(lat1, lon1, lat2, lon2):
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def read_csv(name):
    with open(os.path.join(GAZ, name), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def allocate(total, weights):
    """Largest-remainder allocation of `total` over an ordered dict of weights."""
    s = sum(weights.values())
    raw = {k: total * w / s for k, w in weights.items()}
    alloc = {k: int(v) for k, v in raw.items()}
    rest = total - sum(alloc.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - alloc[k]), list(weights).index(k)))[:rest]:
        alloc[k] += 1
    return alloc


def loc_de(st):
    return LOC_DE.get(st, "in " + st)


def main():
    rng = random.Random(SEED)
    assert sum(CATEGORY_COUNTS.values()) == N_TOTAL

    places = read_csv("places.csv")
    postcodes = read_csv("postcodes.csv")
    bezirke = {p["name"]: p for p in places if p["level"] == "bezirk"}
    stadtteile = {p["name"]: p for p in places if p["level"] == "stadtteil"}
    assert set(BEZIRK_POP) == set(bezirke)
    for st in STADTTEIL_WEIGHT:
        assert st in stadtteile, st

    # --- organisations -------------------------------------------------------
    orgs = []
    for bez in BEZIRK_POP:
        for theme_de, theme_en, cats in ORG_THEMES:
            orgs.append({"theme_de": theme_de, "theme_en": theme_en, "cats": cats,
                         "bezirk": bez, "label": f"{theme_de} {bez}"})
    for label, theme_en, cats in ORG_CITYWIDE:
        orgs.append({"theme_de": label, "theme_en": theme_en, "cats": cats,
                     "bezirk": None, "label": label})
    org_objs = []
    for i, o in enumerate(orgs, 1):
        key = f"org-{i:02d}"
        slug = slugify(o["label"])
        o["key"] = key
        where_de = f"im Bezirk {o['bezirk']}" if o["bezirk"] else "in ganz Hamburg"
        where_en = f"in the {o['bezirk']} district" if o["bezirk"] else "across Hamburg"
        org_objs.append({
            "key": key,
            "name": f"Demo-Träger {o['label']}",
            "website": f"https://example.org/demo/traeger/{slug}",
            "email": f"kontakt-{slug}@example.org",
            "phone": f"+49 40 66969{i:03d}",
            "description": (f"Fiktiver Demo-Träger für {o['theme_de'].replace(' Hamburg', '')} "
                            f"{where_de}. Erfunden für die Demo-Daten von mapservice – keine echte Organisation. "
                            f"/ Fictional demo provider ({o['theme_en']}, {where_en}); not a real organisation."),
        })

    def pick_org(cat, bez):
        local = [o for o in orgs if o["bezirk"] == bez and cat in o["cats"]]
        city = [o for o in orgs if o["bezirk"] is None and cat in o["cats"]]
        if city and (not local or rng.random() < 0.35):
            return rng.choice(city)["key"]
        if local:
            return rng.choice(local)["key"]
        return rng.choice([o for o in orgs if o["bezirk"] == bez])["key"]

    # --- slots: Bezirk x category ---------------------------------------------
    bez_alloc = allocate(N_TOTAL, BEZIRK_POP)
    bez_slots = [b for b in BEZIRK_POP for _ in range(bez_alloc[b])]
    cat_slots = [c for c in CATEGORY_COUNTS for _ in range(CATEGORY_COUNTS[c])]
    rng.shuffle(cat_slots)
    slots = list(zip(bez_slots, cat_slots))

    # confidential shelters: the first crisis_help slots in distinct Bezirke
    confidential_idx, seen = set(), set()
    for i, (b, c) in enumerate(slots):
        if c == "crisis_help" and b not in seen and len(confidential_idx) < N_CONFIDENTIAL:
            confidential_idx.add(i)
            seen.add(b)
    assert len(confidential_idx) == N_CONFIDENTIAL, "not enough Bezirke with crisis_help"

    st_by_bez = {}
    for st, w in STADTTEIL_WEIGHT.items():
        st_by_bez.setdefault(stadtteile[st]["bezirk"], []).append((st, w))

    def pick_stadtteil(bez, used_count):
        cands = st_by_bez[bez]
        # sqrt of residents spreads listings over many Stadtteile; Stadtteile
        # that already have listings get less weight.
        weights = [math.sqrt(w) / (1 + used_count.get(st, 0)) ** 2 for st, w in cands]
        return rng.choices([c[0] for c in cands], weights=weights, k=1)[0]

    def jitter(st):
        p = stadtteile[st]
        lat0, lon0 = ANCHOR.get(st, (float(p["lat"]), float(p["lon"])))
        rmax = float(MAX_OFFSET_M.get(st, 600))
        r = rmax * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        lat = lat0 + (r * math.cos(a)) / 111320.0
        lon = lon0 + (r * math.sin(a)) / (111320.0 * math.cos(math.radians(lat0)))
        return round(lat, 6), round(lon, 6)

    def nearest_postcode(lat, lon, bez):
        same = [pc for pc in postcodes if pc["bezirk"] == bez] or postcodes
        best = min(same, key=lambda pc: haversine_m(lat, lon, float(pc["lat"]), float(pc["lon"])))
        return best["postcode"]

    def pick_langs(cat, tmpl_opts, st):
        if "langs" in tmpl_opts:
            fixed = list(tmpl_opts["langs"])
            return sorted(fixed, key=LANG_ORDER.index)
        factor = LANG_BOOST.get(cat, 1.0)
        if st in MULTILINGUAL_HIGH:
            factor *= 1.4
        elif st in MULTILINGUAL_LOW:
            factor *= 0.5
        langs = {"de"} | set(tmpl_opts.get("include", ()))
        for code, p in LANG_BASE.items():
            pp = p * factor if code != "en" else min(0.85, p * (0.5 + 0.5 * factor))
            if rng.random() < min(pp, 0.9):
                langs.add(code)
        for code, companions, p in LANG_COMPANIONS:
            if any(c in langs for c in companions) and rng.random() < p:
                langs.add(code)
        if rng.random() < P_BKS * factor:
            langs.update(("bs", "hr", "sr"))
        return sorted(langs, key=LANG_ORDER.index)

    def pick_cost(cat, opts):
        if "cost" in opts:
            return opts["cost"]
        weights = {"free": 70, "reduced": 9, "paid": 6, "unknown": 15}
        if cat in ("sport_leisure", "culture", "education"):
            weights = {"free": 55, "reduced": 22, "paid": 10, "unknown": 13}
        if cat in ("counselling", "support_group", "self_help", "newcomer_support",
                   "language_cafe", "youth_centre", "lgbtq", "women", "crisis_help"):
            weights = {"free": 86, "reduced": 2, "paid": 0, "unknown": 12}
        return rng.choices(list(weights), weights=list(weights.values()), k=1)[0]

    def pick_wheelchair():
        return rng.choices(["yes", "limited", "no", "unknown"], weights=[40, 25, 13, 22], k=1)[0]

    def pick_hours(key):
        if key == "247":
            return "24/7"
        if rng.random() < 0.08:
            return None
        return rng.choice(HOURS[key])

    start = datetime.date(2026, 1, 12)
    end = datetime.date(2026, 10, 30)
    span = (end - start).days

    resources, names, used_st = [], set(), {}
    tmpl_use = {}
    for i, (bez, cat) in enumerate(slots):
        n = i + 1
        sid = f"demo-{n:04d}"
        confidential = i in confidential_idx
        templates = T[cat]
        if confidential:
            tmpl = templates[0]
        else:
            pool = [t for t in templates if not t[6].get("confidential")]
            tmpl = None
            for _ in range(100):
                # prefer less used templates so names vary
                weights = [1.0 / (1 + tmpl_use.get((cat, t[0]), 0)) for t in pool]
                cand = rng.choices(pool, weights=weights, k=1)[0]
                st = pick_stadtteil(bez, used_st)
                if f"Demo: {cand[0]} {st}" not in names:
                    tmpl = cand
                    break
            assert tmpl is not None
        stem, extra, audiences, hours_key, d_de, d_en, opts = tmpl
        tmpl_use[(cat, stem)] = tmpl_use.get((cat, stem), 0) + 1

        if confidential:
            st = None
            p = bezirke[bez]
            lat, lon = round(float(p["lat"]), 6), round(float(p["lon"]), 6)
            name = f"Demo: {stem} (Bezirk {bez})"
            address = None
            postcode = None
            desc_de, desc_en = d_de, d_en
            lang_area = None
        else:
            used_st[st] = used_st.get(st, 0) + 1
            lat, lon = jitter(st)
            name = f"Demo: {stem} {st}"
            address = f"{rng.choice(STREETS)} {rng.randint(1, 120)}{rng.choice([''] * 8 + ['a', 'b'])}"
            postcode = nearest_postcode(lat, lon, bez)
            desc_de = d_de.format(loc=loc_de(st), st=st)
            desc_en = d_en.format(st=st)
            lang_area = st
        assert name not in names, name
        names.add(name)

        categories = [cat] + [c for c in extra if c != cat][: rng.choice([1, 2, 2])]
        langs = pick_langs(cat, opts, lang_area or "")
        verified = start + datetime.timedelta(days=rng.randint(0, span))
        resources.append({
            "source_id": sid,
            "name": name,
            "description": desc_de,
            "description_en": desc_en,
            "organization": pick_org(cat, bez),
            "categories": categories,
            "audiences": list(audiences),
            "languages": langs,
            "cost": pick_cost(cat, opts),
            "wheelchair": pick_wheelchair(),
            "opening_hours": pick_hours(hours_key),
            "address": address,
            "postcode": postcode,
            "stadtteil": st,
            "bezirk": bez,
            "lat": lat,
            "lon": lon,
            "phone": f"+49 40 66969{100 + n:03d}",
            "email": f"{sid}@example.org",
            "website": f"https://example.org/demo/{sid}-{slugify(name[len('Demo: '):])}",
            "location_confidential": confidential,
            "last_verified": verified.isoformat(),
        })

    assert 100 + len(resources) <= 999, "ran out of fictional phone numbers"
    data = {
        "source": "demo",
        "licence": "CC0-1.0",
        "attribution": "Fictional demo listings written for mapservice",
        "notice": NOTICE,
        "organizations": org_objs,
        "resources": resources,
    }
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"wrote {len(resources)} resources, {len(org_objs)} organizations -> {OUT}")


if __name__ == "__main__":
    main()
