"""General MIDI programs mapped to NSynth's instrument families and sources: data, no logic.

NSynth (Engel et al. 2017) labels each note with one of 11 instrument *families* and one of 3 *sources*:
``acoustic`` (recorded from an acoustic instrument), ``electronic`` (recorded from an electronic or amplified
instrument) and ``synthetic`` (synthesized). ``GM_PROGRAMS`` gives that label to each of the 128 General MIDI melodic
programs (0-based, as MIDI sends them) that fit one family; ``GM_EXCLUDED`` lists the others with the reason.
``FAMILY_PITCH_RANGES`` keeps each family's notes in a register the instrument can play.
``synth_nsynth`` renders the table; ``docs/nsynth.md`` prints it.
"""

from __future__ import annotations

__all__ = ["GM_PROGRAMS", "GM_EXCLUDED", "FAMILY_PITCH_RANGES"]

#: GM program (0-127) -> ``(family, source)``, for the 98 programs that fit an NSynth family.
#: The comment after each entry is the program's General MIDI name.
GM_PROGRAMS: dict[int, tuple[str, str]] = {
    # Piano: acoustic pianos and the harpsichord are keyboards; electric pianos and the clavinet are amplified.
    0: ("keyboard", "acoustic"),  # Acoustic Grand Piano
    1: ("keyboard", "acoustic"),  # Bright Acoustic Piano
    2: ("keyboard", "electronic"),  # Electric Grand Piano
    3: ("keyboard", "acoustic"),  # Honky-tonk Piano
    4: ("keyboard", "electronic"),  # Electric Piano 1
    5: ("keyboard", "electronic"),  # Electric Piano 2
    6: ("keyboard", "acoustic"),  # Harpsichord
    7: ("keyboard", "electronic"),  # Clavinet
    # Chromatic percussion: struck, pitched idiophones (and the hammered dulcimer) are mallets.
    8: ("mallet", "acoustic"),  # Celesta
    9: ("mallet", "acoustic"),  # Glockenspiel
    10: ("mallet", "acoustic"),  # Music Box
    11: ("mallet", "acoustic"),  # Vibraphone
    12: ("mallet", "acoustic"),  # Marimba
    13: ("mallet", "acoustic"),  # Xylophone
    14: ("mallet", "acoustic"),  # Tubular Bells
    15: ("mallet", "acoustic"),  # Dulcimer
    # Organ: tonewheel organs are electronic, pipe and reed organs acoustic; free-reed squeezeboxes are reeds.
    16: ("organ", "electronic"),  # Drawbar Organ
    17: ("organ", "electronic"),  # Percussive Organ
    18: ("organ", "electronic"),  # Rock Organ
    19: ("organ", "acoustic"),  # Church Organ
    20: ("organ", "acoustic"),  # Reed Organ
    21: ("reed", "acoustic"),  # Accordion
    22: ("reed", "acoustic"),  # Harmonica
    23: ("reed", "acoustic"),  # Tango Accordion
    # Guitar
    24: ("guitar", "acoustic"),  # Acoustic Guitar (nylon)
    25: ("guitar", "acoustic"),  # Acoustic Guitar (steel)
    26: ("guitar", "electronic"),  # Electric Guitar (jazz)
    27: ("guitar", "electronic"),  # Electric Guitar (clean)
    28: ("guitar", "electronic"),  # Electric Guitar (muted)
    29: ("guitar", "electronic"),  # Overdriven Guitar
    30: ("guitar", "electronic"),  # Distortion Guitar
    31: ("guitar", "electronic"),  # Guitar Harmonics
    # Bass
    32: ("bass", "acoustic"),  # Acoustic Bass
    33: ("bass", "electronic"),  # Electric Bass (finger)
    34: ("bass", "electronic"),  # Electric Bass (pick)
    35: ("bass", "electronic"),  # Fretless Bass
    36: ("bass", "electronic"),  # Slap Bass 1
    37: ("bass", "electronic"),  # Slap Bass 2
    38: ("bass", "synthetic"),  # Synth Bass 1
    39: ("bass", "synthetic"),  # Synth Bass 2
    # Strings: bowed and plucked orchestral strings (the contrabass is bowed here, so a string, not a bass).
    40: ("string", "acoustic"),  # Violin
    41: ("string", "acoustic"),  # Viola
    42: ("string", "acoustic"),  # Cello
    43: ("string", "acoustic"),  # Contrabass
    44: ("string", "acoustic"),  # Tremolo Strings
    45: ("string", "acoustic"),  # Pizzicato Strings
    46: ("string", "acoustic"),  # Orchestral Harp
    # Ensemble
    48: ("string", "acoustic"),  # String Ensemble 1
    49: ("string", "acoustic"),  # String Ensemble 2
    50: ("string", "synthetic"),  # Synth Strings 1
    51: ("string", "synthetic"),  # Synth Strings 2
    52: ("vocal", "acoustic"),  # Choir Aahs
    53: ("vocal", "acoustic"),  # Voice Oohs
    54: ("vocal", "synthetic"),  # Synth Voice
    # Brass
    56: ("brass", "acoustic"),  # Trumpet
    57: ("brass", "acoustic"),  # Trombone
    58: ("brass", "acoustic"),  # Tuba
    59: ("brass", "acoustic"),  # Muted Trumpet
    60: ("brass", "acoustic"),  # French Horn
    61: ("brass", "acoustic"),  # Brass Section
    62: ("brass", "synthetic"),  # Synth Brass 1
    63: ("brass", "synthetic"),  # Synth Brass 2
    # Reed: saxophones and double reeds (and the clarinet).
    64: ("reed", "acoustic"),  # Soprano Sax
    65: ("reed", "acoustic"),  # Alto Sax
    66: ("reed", "acoustic"),  # Tenor Sax
    67: ("reed", "acoustic"),  # Baritone Sax
    68: ("reed", "acoustic"),  # Oboe
    69: ("reed", "acoustic"),  # English Horn
    70: ("reed", "acoustic"),  # Bassoon
    71: ("reed", "acoustic"),  # Clarinet
    # Pipe: edge-blown instruments (including whistles and the ocarina) are flutes.
    72: ("flute", "acoustic"),  # Piccolo
    73: ("flute", "acoustic"),  # Flute
    74: ("flute", "acoustic"),  # Recorder
    75: ("flute", "acoustic"),  # Pan Flute
    76: ("flute", "acoustic"),  # Blown Bottle
    77: ("flute", "acoustic"),  # Shakuhachi
    78: ("flute", "acoustic"),  # Whistle
    79: ("flute", "acoustic"),  # Ocarina
    # Synth lead (Lead 6 "voice" is a sung-vowel synth, so a synthetic vocal).
    80: ("synth_lead", "synthetic"),  # Lead 1 (square)
    81: ("synth_lead", "synthetic"),  # Lead 2 (sawtooth)
    82: ("synth_lead", "synthetic"),  # Lead 3 (calliope)
    83: ("synth_lead", "synthetic"),  # Lead 4 (chiff)
    84: ("synth_lead", "synthetic"),  # Lead 5 (charang)
    85: ("vocal", "synthetic"),  # Lead 6 (voice)
    86: ("synth_lead", "synthetic"),  # Lead 7 (fifths)
    87: ("synth_lead", "synthetic"),  # Lead 8 (bass + lead)
    # Synth pad: only the two pads with an NSynth counterpart (keyboard_synthetic, vocal_synthetic).
    90: ("keyboard", "synthetic"),  # Pad 3 (polysynth)
    91: ("vocal", "synthetic"),  # Pad 4 (choir)
    # Ethnic: plucked lutes are guitars, the koto (a zither) and the fiddle strings, the kalimba a mallet.
    104: ("guitar", "acoustic"),  # Sitar
    105: ("guitar", "acoustic"),  # Banjo
    106: ("guitar", "acoustic"),  # Shamisen
    107: ("string", "acoustic"),  # Koto
    108: ("mallet", "acoustic"),  # Kalimba
    109: ("reed", "acoustic"),  # Bagpipe
    110: ("string", "acoustic"),  # Fiddle
    111: ("reed", "acoustic"),  # Shanai
    # Percussive: only the pitched, struck ones.
    112: ("mallet", "acoustic"),  # Tinkle Bell
    114: ("mallet", "acoustic"),  # Steel Drums
}

_PAD = "synth pad: slow attack and evolving timbre that no NSynth family describes"
_FX = "sound effect: no definite pitch or instrument"
_DRUM = "drum or unpitched percussion: NSynth has no percussion family"

#: GM program -> why it is left out of the generated dataset (the 30 programs not in ``GM_PROGRAMS``).
GM_EXCLUDED: dict[int, str] = {
    47: "Timpani: a pitched drum, but NSynth has no percussion family",
    55: "Orchestra Hit: a layered ensemble stab, not one instrument",
    88: "Pad 1 (new age): " + _PAD,
    89: "Pad 2 (warm): " + _PAD,
    92: "Pad 5 (bowed): " + _PAD,
    93: "Pad 6 (metallic): " + _PAD,
    94: "Pad 7 (halo): " + _PAD,
    95: "Pad 8 (sweep): " + _PAD,
    96: "FX 1 (rain): " + _FX,
    97: "FX 2 (soundtrack): " + _FX,
    98: "FX 3 (crystal): " + _FX,
    99: "FX 4 (atmosphere): " + _FX,
    100: "FX 5 (brightness): " + _FX,
    101: "FX 6 (goblins): " + _FX,
    102: "FX 7 (echoes): " + _FX,
    103: "FX 8 (sci-fi): " + _FX,
    113: "Agogo: " + _DRUM,
    115: "Woodblock: " + _DRUM,
    116: "Taiko Drum: " + _DRUM,
    117: "Melodic Tom: " + _DRUM,
    118: "Synth Drum: " + _DRUM,
    119: "Reverse Cymbal: " + _DRUM,
    120: "Guitar Fret Noise: " + _FX,
    121: "Breath Noise: " + _FX,
    122: "Seashore: " + _FX,
    123: "Bird Tweet: " + _FX,
    124: "Telephone Ring: " + _FX,
    125: "Helicopter: " + _FX,
    126: "Applause: " + _FX,
    127: "Gunshot: " + _FX,
}

#: Family -> inclusive MIDI pitch range ``(lowest, highest)`` rendered for it: the family's usual register,
#: clipped to NSynth's 21-108 (A0-C8). Keys a program has no sample for render silent and are skipped.
FAMILY_PITCH_RANGES: dict[str, tuple[int, int]] = {
    "bass": (28, 67),  # E1-G4: four-string bass and synth bass
    "brass": (34, 84),  # Bb1 (tuba) - C6 (trumpet)
    "flute": (60, 96),  # C4-C7
    "guitar": (40, 84),  # E2-C6
    "keyboard": (21, 108),  # the 88 piano keys
    "mallet": (48, 96),  # C3-C7
    "organ": (36, 96),  # C2-C7
    "reed": (36, 84),  # C2 (bassoon, baritone sax) - C6
    "string": (28, 96),  # E1 (contrabass) - C7 (violin)
    "synth_lead": (36, 96),  # C2-C7
    "vocal": (40, 79),  # E2 (bass voice) - G5 (soprano)
}
