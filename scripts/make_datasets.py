#!/usr/bin/env python3
"""Write the example adapters' datasets: `datasets/<name>/{train,eval}.jsonl`.

A recipe, not a download: seeded `random.Random`, the standard library only, no network, so a
fresh clone can rebuild exactly the bytes DVC recorded in `datasets.dvc` (scripts/get_data.sh
checks that). Never iterate over a set or dict built from random data here: output order must
not depend on hashing.

    python scripts/make_datasets.py [--out DIR] [--only NAME ...]

Two tasks (see docs/data.md for why they were chosen):
- ticket-json: a free-text support ticket -> one compact JSON object with a fixed schema.
- support-tone: a terse agent draft -> the same reply in the house style (greeting with the
  customer's first name, a fixed empathy line, abbreviations written out, a fixed sign-off).

The eval split of both tasks partly uses sentence templates (and fillers) that never occur in
train, so the gate measures whether the mapping was learned, not memorised phrasings.
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from random import Random

SEED = 20250101
ROOT = Path(__file__).resolve().parent.parent
SIZES = {"ticket-json": (600, 120), "support-tone": (500, 100)}
EVAL_HELDOUT_SHARE = 0.5  # share of eval items built from eval-only templates

# -- shared fillers ----------------------------------------------------------------------------

FIRST_NAMES = [
    "Maria", "James", "Priya", "Chen", "Fatima", "Lukas", "Aisha", "Tom", "Sofia", "Kwame",
    "Elena", "Mateo", "Yuki", "Olivia", "Ahmed", "Grace", "Ivan", "Nora", "Diego", "Hannah",
    "Ravi", "Emma", "Kofi", "Lena", "Omar", "Julia", "Sven", "Amara", "Noah", "Mei",
    "Carlos", "Zara", "Felix", "Ines", "Daniel", "Leila", "Pavel", "Chloe", "Arjun", "Rosa",
]  # fmt: skip
LAST_NAMES = [
    "Lopez", "Smith", "Shah", "Wei", "Khan", "Becker", "Bello", "Walsh", "Rossi", "Mensah",
    "Petrova", "Garcia", "Tanaka", "Brown", "Hassan", "Okafor", "Novak", "Larsen", "Silva",
    "Meyer", "Patel", "Dubois", "Boateng", "Fischer", "Haddad", "Costa", "Nilsson", "Eze",
    "Murphy", "Lin", "Moreno", "Ali", "Wagner", "Ferreira", "Cohen", "Nasser", "Kowalski",
]  # fmt: skip
CITIES = [
    "Berlin", "Leeds", "Austin", "Lyon", "Porto", "Oslo", "Dublin", "Denver", "Kraków",
    "Glasgow", "Turin", "Calgary", "Ghent", "Perth", "Nairobi", "Malmö",
]  # fmt: skip
ERRORS = ["E-101", "E-404", "0x80070005", "503", "ERR_TIMEOUT", "E42", "code 17", "F-3"]
PRODUCTS_TRAIN = [
    "Acme Router X2", "Acme Buds Pro", "Acme Smart Thermostat", "Acme Fit Watch 3",
    "Acme Vacuum V8", "Acme Home Hub", "Acme Kettle K1", "Acme Desk Lamp", "Acme Baby Monitor",
    "Acme Robot Mower", "Acme Cam 360", "Acme Scale S2", "Acme Tablet 10", "Acme Speaker Mini",
    "Acme Doorbell Pro",
]  # fmt: skip
PRODUCTS_EVAL_ONLY = ["Acme Air Purifier", "Acme E-Bike 2", "Acme Blender B5"]


def _order_id(rng: Random) -> str:
    return f"AC-{rng.randint(100000, 999999)}"


def _amount(rng: Random) -> str:
    return f"${rng.randint(5, 400)}.{rng.choice(['00', '49', '99', '95', '50'])}"


def _fillers(rng: Random, products: list[str]) -> dict[str, str]:
    """Every slot a template may use; unused ones are simply ignored by str.format."""
    return {
        "product": rng.choice(products),
        "order": _order_id(rng),
        "amount": _amount(rng),
        "error": rng.choice(ERRORS),
        "days": str(rng.randint(3, 21)),
        "n": str(rng.randint(2, 10)),
        "city": rng.choice(CITIES),
    }


def normalise(text: str) -> str:
    """The same key as registry.spec.data.normalise (kept stdlib-only here): used to avoid leakage."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s]", " ", text.casefold())
    return " ".join(text.split())


def _chat(ex_id: str, user: str, answer: str) -> dict:
    # No system message in the records: the spec's data.system_prompt is the one source of it.
    return {
        "id": ex_id,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
    }


# -- ticket-json -------------------------------------------------------------------------------

CATEGORIES = ("billing", "technical", "account", "shipping", "other")
# (template, eval_only). Slots: {product} {order} are extracted; the others are noise.
TICKET_CORE: dict[str, list[tuple[str, bool]]] = {
    "billing": [
        ("I was charged twice for order {order}. Can you refund the extra {amount}?", False),
        ("My card was billed {amount} for {product} but I cancelled the subscription last month.", False),
        ("Could you send me an invoice for order {order}? Our accounting team needs it.", False),
        ("I returned the {product} {days} days ago and still have not received my refund.", False),
        ("Why did the price of my {product} plan go up to {amount} without any notice?", False),
        ("The payment for order {order} failed but the money left my bank account anyway.", False),
        ("I was promised a discount code but it was not applied to order {order}.", False),
        ("Please cancel my {product} subscription and stop charging my card.", False),
        ("There is a charge of {amount} on my statement that I don't recognise.", False),
        ("I need a refund for the {product} from order {order}, it was the wrong model.", False),
        ("My bank statement shows {amount} from you twice this month for the {product} plan.", True),
        ("Can I get my money back for order {order}? I changed my mind.", True),
    ],
    "technical": [
        ("My {product} keeps disconnecting from the wifi every few minutes.", False),
        ("The {product} shows error {error} when I try to start it.", False),
        ("After the latest update the {product} app crashes on launch.", False),
        ("The {product} will not turn on anymore, even after charging it overnight.", False),
        ("I can't pair my {product} with my phone, it never shows up in Bluetooth.", False),
        ("The {product} I received with order {order} makes a loud buzzing noise.", False),
        ("The {product} stopped syncing with the app and my settings from yesterday are gone.", False),
        ("How do I reset the {product} to factory settings? The manual does not say.", False),
        ("The screen on my {product} flickers and then goes black.", False),
        ("Your website gives me error {error} whenever I open the checkout page.", False),
        ("Since yesterday my {product} freezes after about ten minutes of use.", True),
        ("The battery of the {product} drains completely in one hour.", True),
    ],
    "account": [
        ("I forgot my password and the reset email never arrives.", False),
        ("I can't log in to my account, it says my account is locked.", False),
        ("Please change the email address on my account to {email}.", False),
        ("How do I turn on two-factor authentication for my account?", False),
        ("I would like to delete my account and all of my data.", False),
        ("Someone logged in to my account from {city} and it was not me.", False),
        ("I never received the verification code to finish signing up.", False),
        ("My {product} account shows someone else's name and address.", False),
        ("The login page keeps sending me back to the start after I type my password.", True),
        ("Can you merge my two accounts into one? I signed up with different emails.", True),
    ],
    "shipping": [
        ("Where is my order {order}? The tracking has not moved in {days} days.", False),
        ("Order {order} arrived with a crushed box and the {product} is damaged.", False),
        ("I need to change the delivery address for order {order} to {city}.", False),
        ("The tracking says delivered but I never got order {order}.", False),
        ("I ordered the {product} {days} days ago and it still has not shipped.", False),
        ("I received the wrong item in order {order}, I ordered a {product}.", False),
        ("Do you ship the {product} to {city}? I could not select it at checkout.", False),
        ("Order {order} is missing the charger for the {product}.", False),
        ("Can you send order {order} by express? I need it before the weekend.", False),
        ("The courier left order {order} at the wrong house.", False),
        ("My parcel for order {order} was returned to sender, please ship it again.", True),
        ("Only half of order {order} arrived, the {product} is still missing.", True),
    ],
    "other": [
        ("I love my {product}! Just wanted to say thanks to your team.", False),
        ("Do you have a physical store in {city}?", False),
        ("It would be great if the {product} came in more colours.", False),
        ("Are you hiring? I would love to work for Acme.", False),
        ("Is the {product} a good gift for a ten year old?", False),
        ("Do you have a partnership program for small shops in {city}?", False),
        ("Please add a dark mode to the {product} app, my eyes hurt at night.", False),
        ("What are your opening hours over the holidays?", True),
        ("Could you recommend which {product} model is best for a small flat?", True),
    ],
}  # fmt: skip
OPENINGS = [("Hi,", False), ("Hello,", False), ("Hello support team,", False),
            ("Dear Acme,", False), ("Hey there,", False), ("Good morning,", False),
            ("To whom it may concern,", False), ("Hi team,", False),
            ("Greetings,", True), ("Hi folks,", True)]  # fmt: skip
NAME_INTROS = [("My name is {name}.", False), ("This is {name}.", False), ("{name} here.", False),
               ("I am {name}, a long-time customer.", True)]  # fmt: skip
NAME_CLOSINGS = [("Thanks, {name}", False), ("Best regards,\n{name}", False), ("- {name}", False),
                 ("Cheers, {name}", False), ("Regards, {name}", False),
                 ("Kind regards,\n{name}", True), ("Many thanks, {name}", True)]  # fmt: skip
PRIORITY_CUES: dict[str, list[tuple[str, bool]]] = {
    "urgent": [("This is urgent!", False), ("Please fix this immediately.", False),
               ("I need this resolved ASAP.", False), ("URGENT: our whole team is blocked.", False),
               ("We are losing sales every hour this goes on.", False),
               ("Please help right away, it's an emergency.", False),
               ("Our shop cannot take orders until this is fixed, please hurry!", True)],
    "high": [("Please sort this out today.", False), ("I need this fixed soon.", False),
             ("This is really frustrating.", False), ("I already contacted you twice about this.", False),
             ("I'd appreciate a quick answer, this is annoying.", False),
             ("This is the third time I'm writing, please reply today.", True)],
    "medium": [("", False)],  # medium = no urgency cue at all
    "low": [("No rush.", False), ("Whenever you have time.", False),
            ("Not urgent, just curious.", False), ("It's not a big deal.", False),
            ("No hurry at all.", False), ("Take your time with this one.", True)],
}  # fmt: skip
PRIORITY_WEIGHTS = {"urgent": 0.2, "high": 0.25, "medium": 0.35, "low": 0.2}
NEUTRAL_CLOSERS = ["Thanks.", "Let me know what you can do.", "Thanks in advance.",
                   "Looking forward to your reply."]  # fmt: skip

TICKET_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["category", "priority", "product", "order_id", "customer_name"],
    "properties": {
        "category": {"enum": list(CATEGORIES)},
        "priority": {"enum": ["low", "medium", "high", "urgent"]},
        "product": {"type": ["string", "null"]},
        "order_id": {"type": ["string", "null"], "pattern": "^AC-[0-9]{6}$"},
        "customer_name": {"type": ["string", "null"]},
    },
}


def _pick(rng: Random, options: list[tuple[str, bool]], heldout: bool) -> str:
    """Train items never see eval-only options; held-out eval items prefer them."""
    pool = [t for t, eval_only in options if not eval_only]
    if heldout:
        pool = [t for t, eval_only in options if eval_only] or pool
    return rng.choice(pool)


def _typo(rng: Random, text: str) -> str:
    """Swap or drop a letter inside one long word outside {slots} (real tickets have typos)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w = words[i]
    k = rng.randint(1, len(w) - 2)
    words[i] = w[:k] + w[k + 1] + w[k] + w[k + 2 :] if rng.random() < 0.6 else w[:k] + w[k + 1 :]
    return " ".join(words)


def _styled(rng: Random, template: str, tone: str) -> str:
    """Tone is applied to the template text only, so extracted values stay exactly as written."""
    if tone == "casual":
        parts = re.split(r"(\{\w+\})", template)  # keep {slots} intact: str.format needs them
        template = "".join(p if p.startswith("{") else p.lower() for p in parts).rstrip(".")
    elif tone == "angry":
        template = re.sub(r"[.?]$", "", template) + rng.choice(["!!!", "!!", "?!"])
    if rng.random() < 0.3:
        template = _typo(rng, template)
    return template


def ticket_item(rng: Random, heldout: bool, category: str | None = None) -> tuple[str, str]:
    """One (ticket text, JSON answer)."""
    category = category or rng.choice(CATEGORIES)
    priority = rng.choices(list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values()))[0]
    if category == "other" and priority == "urgent":
        priority = "medium"  # nobody writes "URGENT" about opening hours
    products = PRODUCTS_TRAIN + (PRODUCTS_EVAL_ONLY if heldout else [])
    fill = _fillers(rng, products)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    fill["email"] = f"{first.lower()}.{last.lower()}@example.com"
    name = rng.choice([f"{first} {last}", first, None, f"{first} {last}", None])
    core = _pick(rng, TICKET_CORE[category], heldout)
    tone = rng.choices(["plain", "casual", "angry"], weights=[0.6, 0.25, 0.15])[0]
    if tone == "angry" and priority in ("low", "medium"):
        tone = "plain"  # an angry "no rush" ticket would contradict its own label
    parts: list[str] = []
    if rng.random() < 0.6:
        parts.append(_styled(rng, _pick(rng, OPENINGS, heldout), "plain"))
    name_at_start = name is not None and rng.random() < 0.35
    if name_at_start:
        parts.append(_pick(rng, NAME_INTROS, heldout).replace("{name}", name))
    if rng.random() < 0.2:
        parts.append(rng.choice(["I've been a customer for years.", "Quick question.",
                                 "I hope you can help.", "Sorry to bother you again."]))  # fmt: skip
    parts.append(_styled(rng, core, tone).format(**fill))
    cue = _pick(rng, PRIORITY_CUES[priority], heldout)
    if cue:
        parts.insert(len(parts) - 1 if rng.random() < 0.25 else len(parts), cue)
    if rng.random() < 0.35:
        parts.append(rng.choice(NEUTRAL_CLOSERS))
    text = " ".join(parts)
    if name is not None and not name_at_start:
        text += "\n\n" + _pick(rng, NAME_CLOSINGS, heldout).replace("{name}", name)
    answer = {
        "category": category,
        "priority": priority,
        "product": fill["product"] if "{product}" in core else None,
        "order_id": fill["order"] if "{order}" in core else None,
        "customer_name": name,
    }
    return text, json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


# -- support-tone ------------------------------------------------------------------------------

EMPATHY = "Thank you for reaching out, and I'm sorry for the trouble."
SIGN_OFF = "— Acme Support"
# canonical spelling -> what a hurried agent types; the house style writes them out again.
ABBREVIATIONS = [
    ("as soon as possible", "asap"), ("approximately", "approx"), ("information", "info"),
    ("password", "pwd"), ("account", "acct"), ("message", "msg"), ("because", "b/c"),
    ("tomorrow", "tmrw"), ("please", "pls"), ("thanks", "thx"), ("your", "ur"), ("with", "w/"),
    ("you", "u"),
]  # fmt: skip
TITLES = ["Dr.", "Prof."]  # titles without a gender: names here are not gendered
# Canonical replies: lowercase, one sentence, no "I" (the rule only capitalises the first letter).
DRAFTS: list[tuple[str, bool]] = [
    ("your refund of {amount} was sent today and should reach your account in {n} business days", False),
    ("we sent a new password reset link to your email, please check your spam folder", False),
    ("order {order} left our warehouse today, you will get the tracking number by email", False),
    ("your {product} is covered by the warranty, please send it back with the prepaid label", False),
    ("we have unlocked your account, you can log in again now", False),
    ("the charge of {amount} was a temporary hold and will disappear in {n} days", False),
    ("please restart the {product} and hold the reset button for ten seconds", False),
    ("we changed the delivery address for order {order} to {city}", False),
    ("a replacement {product} is on its way, you do not need to return the broken one", False),
    ("your subscription is cancelled and you will not be charged again", False),
    ("please update the {product} app to the latest version, that fixes the crash", False),
    ("we could not find order {order}, please send us the email address you used", False),
    ("your invoice for order {order} is attached to this message", False),
    ("the courier will try to deliver order {order} again tomorrow", False),
    ("we added a {amount} credit to your account because of the delay", False),
    ("two-factor authentication is now on, you will need your phone to log in", False),
    ("your account and all your data will be deleted within {n} days", False),
    ("the discount code only works on full-price items, sorry", False),
    ("we do not ship to {city} yet but hope to start soon", False),
    ("error {error} on the {product} means the filter needs cleaning", False),
    ("the {product} needs firmware 2.1, please install it from the app", False),
    ("order {order} will arrive in approximately {n} days because of high demand", False),
    ("please send us a photo of the damaged {product} and we will replace it", False),
    ("the verification code can take up to {n} minutes, please check your spam folder", False),
    ("we refunded {amount} to your card, thanks for your patience", False),
    ("your {product} order {order} was split into two parcels", False),
    ("the {product} works with the hub, please pair it from the settings page", False),
    ("we need more information about the error, please send us a screenshot", False),
    ("your new password must have at least {n} characters", False),
    ("the price changed because your discount ended, you can cancel anytime", False),
    ("order {order} is ready for pickup at our {city} store", False),
    ("please reply with your order number so we can check the delivery", False),
    ("we merged your accounts, please log in with your newest email", False),
    ("the {product} battery is replaced for free, please book a repair slot", False),
    ("your message was passed to our product team, thanks for the idea", False),
    ("express shipping for order {order} costs {amount}, please confirm", False),
    ("we cancelled order {order} and you will get an email with the details", False),
    ("the {product} is back in stock tomorrow, you can order it then", False),
    ("please clear your browser cache and try the checkout page again", False),
    ("your account email is now updated, please confirm it with the link we sent", False),
    ("your warranty claim for the {product} was approved, a courier will collect it", False),
    ("we are sorry about the buzzing {product}, please return it with order {order}", False),
    # eval-only
    ("the login problem is fixed, please try again with your usual password", True),
    ("order {order} was returned to us, we will send it again tomorrow at no cost", True),
    ("your {product} will be repaired within approximately {n} days", True),
    ("we have paused your subscription, you can restart it from your account", True),
    ("the missing charger for the {product} ships today with tracking", True),
    ("please reset the {product} and then send us a message if error {error} comes back", True),
    ("your {amount} gift card was added to your account, thanks for waiting", True),
    ("we found order {order} at the depot and it goes out with the next van", True),
]  # fmt: skip


def _abbreviate(rng: Random, text: str) -> str:
    """Randomly shorten words the house style spells out; slots are filled afterwards."""
    for full, short in ABBREVIATIONS:
        pattern = re.compile(rf"(?<![\w{{]){re.escape(full)}(?![\w}}])")
        text = pattern.sub(lambda m, s=short: s if rng.random() < 0.6 else m.group(0), text)
    return text


def tone_item(rng: Random, heldout: bool) -> tuple[str, str]:
    """One (customer + draft, house-style reply)."""
    products = PRODUCTS_TRAIN + (PRODUCTS_EVAL_ONLY if heldout else [])
    fill = _fillers(rng, products)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    customer = rng.choices(
        [f"{first} {last}", first, f"{rng.choice(TITLES)} {first} {last}"], weights=[6, 2, 2]
    )[0]
    template = _pick(rng, DRAFTS, heldout)
    draft = _abbreviate(rng, template)
    if rng.random() < 0.15:
        draft = draft[0].upper() + draft[1:]
    if rng.random() < 0.3:
        draft += "."
    canonical = template.format(**fill)
    body = canonical[0].upper() + canonical[1:] + "."
    user = f"Customer: {customer}\nDraft: {draft.format(**fill)}"
    answer = f"Hi {first},\n\n{EMPATHY}\n\n{body}\n\n{SIGN_OFF}"
    return user, answer


# -- splitting and writing ---------------------------------------------------------------------


def build(
    prefix: str,
    make: Callable[[Random, bool], tuple[str, str]],
    sizes: tuple[int, int],
    rng: Random,
    first: list[Callable[[Random], tuple[str, str]]] = (),
) -> tuple[list[dict], list[dict]]:
    """Eval first (so held-out items claim their prompts), then train; no prompt in both."""
    n_train, n_eval = sizes
    seen: set[str] = set()

    def draw(n: int, heldout_share: float, split: str, firsts=()) -> list[dict]:
        rows: list[dict] = []
        makers = list(firsts)
        while len(rows) < n:
            if makers:
                user, answer = makers.pop(0)(rng)
            else:
                user, answer = make(rng, rng.random() < heldout_share)
            key = normalise(user)
            if key in seen:
                continue
            seen.add(key)
            rows.append(_chat(f"{prefix}-{split}-{len(rows) + 1:04d}", user, answer))
        return rows

    evals = draw(n_eval, EVAL_HELDOUT_SHARE, "eval")
    train = draw(n_train, 0.0, "train", first)
    return train, evals


def datasets() -> dict[str, tuple[list[dict], list[dict]]]:
    # The prompt-only baseline shows the first train examples as few-shot demos: make the first
    # five cover every ticket category instead of leaving that to chance.
    ticket_firsts = [
        (lambda r, c=c: ticket_item(r, False, c))
        for c in ("shipping", "billing", "technical", "account", "other")
    ]
    tj_train, tj_eval = build(
        "tj", ticket_item, SIZES["ticket-json"], Random(SEED + 1), ticket_firsts
    )
    return {
        "ticket-json": (with_replay(tj_train), tj_eval),
        "support-tone": build("st", tone_item, SIZES["support-tone"], Random(SEED + 2)),
    }


REPLAY = ROOT / "scripts" / "data" / "general_replay.jsonl"


def with_replay(train: list[dict], first: int = 5) -> list[dict]:
    """Train rows with the committed replay examples (general prompts answered by the base
    model, scripts/make_replay.py) spread evenly after the first `first` rows: without them
    the adapter answers every prompt with ticket JSON (docs/calibration.md, run I)."""
    replay = [json.loads(line) for line in REPLAY.read_text(encoding="utf-8").splitlines()]
    out, step = list(train[:first]), max(1, (len(train) - first) // max(1, len(replay)))
    rest = train[first:]
    for i, row in enumerate(rest):
        out.append(row)
        if i % step == step - 1 and replay:
            out.append(replay.pop(0))
    return out + replay


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(text.encode("utf-8"))  # bytes: no platform newline translation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "datasets", help="datasets folder")
    parser.add_argument("--only", action="append", choices=sorted(SIZES), help="one dataset")
    args = parser.parse_args(argv)
    for name, (train, evals) in datasets().items():
        if args.only and name not in args.only:
            continue
        write_jsonl(args.out / name / "train.jsonl", train)
        write_jsonl(args.out / name / "eval.jsonl", evals)
        print(f"{name}: {len(train)} train, {len(evals)} eval -> {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
