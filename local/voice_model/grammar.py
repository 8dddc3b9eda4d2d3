"""The words a call can use, as a JSGF grammar for pocketsphinx.

Free dictation with pocketsphinx's general language model hears only a fraction of the words in telephone speech; a
grammar over what a caller of this business says (opening hours, tables for a number of people on a day at a time,
a name, a person to talk to, goodbye) hears most of them. Everything the grammar can produce is something the intent
layer understands. The business's own name is added from the session, and only words the pronunciation dictionary
knows are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DAYS = ("today", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
# First names a booking may be under: common ones, each a word of the pronunciation dictionary.
NAMES = (
    "ada", "alan", "alice", "amelia", "anna", "ben", "charlotte", "daniel", "david", "emma", "grace", "hannah",
    "henry", "isabella", "jack", "james", "john", "julia", "laura", "linda", "linus", "lucas", "maria", "mary",
    "michael", "noah", "olivia", "oscar", "paul", "peter", "robert", "sarah", "sophia", "susan", "thomas", "william",
)  # fmt: skip

_RULES = """\
#JSGF V1.0;
grammar call;
public <utterance> = [<opener>] <request> [<closer>];
<opener> = hello | hi | sorry | yes [please] | okay | great | thanks | thank you | no thanks | excuse me;
<closer> = please | thanks | thank you | goodbye;
<request> = <hours> | <booking> | <availability> | <name> | <transfer> | <goodbye> | <yes> | <no> | <business>;
<hours> = what are your [opening] hours [<day>] | when are you open [<day>] | are you open [<day>]
        | when do you (open | close) [<day>];
<booking> = [i would like to | i want to | can i | could i] (book | reserve) a table [<party>] [<when>];
<availability> = (do you have | is there) a table [free] [<party>] [<when>];
<party> = for <number> [people];
<when> = [on] <day> [at <time>] | at <time> [[on] <day>];
<time> = <number> [thirty] [o'clock] [in the (morning | afternoon | evening)] | noon;
<name> = [my] name is <person> | the name is <person> | it is for <person> | under [the name] <person>;
<transfer> = [can i | could i | i want to] (talk | speak) to a (person | human) [please]
           | (transfer | put) me through [to a person];
<goodbye> = that is all [goodbye] | goodbye | bye;
<yes> = yes [please | that is right] | that is right | sounds good;
<no> = no [thank you];
<business> = [hello] [is this | thanks for calling] {business} [this is the virtual assistant]
           [how can i help you today];
<day> = {days};
<number> = {numbers};
<person> = {names};
"""

_WORD = re.compile(r"[a-z][a-z']*")


@dataclass(frozen=True)
class Vocabulary:
    """What a call's grammar is built from besides the fixed phrases: the business's name and the names a booking
    may be under."""

    business_name: str | None = None
    names: tuple[str, ...] = NAMES


def words_of(text: str) -> list[str]:
    """Lower-case words of `text`, as the grammar and the recogniser spell them."""
    return _WORD.findall(text.lower())


def build_grammar(vocabulary: Vocabulary, known: Iterable[str]) -> str:
    """The JSGF grammar for `vocabulary`, keeping only words in `known` (the pronunciation dictionary)."""
    dictionary = frozenset(known)
    business = [word for word in words_of(vocabulary.business_name or "") if word in dictionary]
    names = sorted({name for name in vocabulary.names if name in dictionary}) or ["ada"]
    return _RULES.format(
        business=" ".join(business) or "the business",
        days=" | ".join(DAYS),
        numbers=" | ".join(NUMBERS),
        names=" | ".join(names),
    )
