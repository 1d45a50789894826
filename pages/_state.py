"""State shared by the pages: the chosen dataset and tasks, friendly errors, the current job.

Everything lives in ``st.session_state``, which is per browser session, so two
people using the app at once never see each other's data, jobs or results.
A page opened directly (without visiting the Data page first) falls back to the
built-in default dataset and a sensible pair of its tasks.
"""
from __future__ import annotations

import contextlib
import re
import logging
import os

import streamlit as st

from explorer.data.dataset import Dataset
from explorer.datasets import DEFAULT, REGISTRY, load_dataset, names
from explorer.errors import ExplorerError
from explorer.jobs import Job, format_seconds
from explorer.data.sentence import DEFAULT as DEFAULT_ENCODER, ENCODERS as TEXT_ENCODERS, cache_path, with_encoder
from explorer.training.progress import within

log = logging.getLogger("explorer.app")

# The first tasks a newcomer sees per built-in dataset. News: the four whose default sweep with controls
# resolves cells (README "The default sweep on news, with controls"); the others: two related-looking tasks.
DEFAULT_TASKS = {"news": ["outlet", "funding", "section", "length"], "digits": ["digit", "even"], "diamonds": ["price", "cut"],
                 "hotels": []}
TINY_ENV = "EXPLORER_TINY"


def tiny() -> bool:
    """Tiny defaults (for the browser test): every action finishes in seconds."""
    return os.environ.get(TINY_ENV, "") not in ("", "0")


def init() -> None:
    _leave_legacy_pages_mode()
    ss = st.session_state
    ss.setdefault("source", {"kind": "builtin", "name": DEFAULT})
    ss.setdefault("tasks", None)  # None: not chosen yet, use the dataset's default pair


def _leave_legacy_pages_mode() -> None:
    """Hand a cold deep link back to app.py's navigation.

    Streamlit decides per server whether a ``pages/`` folder beside the entry script
    means its legacy multipage mode, and only an ``st.navigation`` call turns that
    off. When the very first request of a fresh server is a deep link (``/train``),
    the page script runs alone, without app.py's frame and navigation. Every page
    calls ``init()`` first, so switching the (class-level) flag off here and
    rerunning sends that request through app.py. Private Streamlit API: the browser
    test opens a deep link first to catch a change in a later Streamlit.
    """
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def builtin_names() -> list[str]:
    return names()


def describe_builtin(name: str) -> str:
    return REGISTRY[name].description if name in REGISTRY else ""


def set_builtin(name: str) -> None:
    st.session_state["source"] = {"kind": "builtin", "name": name}
    st.session_state["tasks"] = None
    st.session_state.pop("csv_dataset", None)


def set_csv(dataset: Dataset) -> None:
    st.session_state["source"] = {"kind": "csv", "name": dataset.name}
    st.session_state["csv_dataset"] = dataset
    st.session_state["tasks"] = None


def dataset() -> Dataset | None:
    """The current dataset, or None after showing why it could not be loaded."""
    init()
    src = st.session_state["source"]
    if src["kind"] == "csv":
        ds = st.session_state.get("csv_dataset")
        if ds is not None:
            return ds
        set_builtin(DEFAULT)  # the upload is gone (e.g. a new session): back to the default
        src = st.session_state["source"]
    with friendly_errors("loading the dataset"), st.spinner(f"Loading the '{src['name']}' dataset…"):
        return load_dataset(src["name"])
    return None


def default_tasks(ds: Dataset) -> list[str]:
    preset = [t for t in DEFAULT_TASKS.get(ds.source.get("name", ds.name), []) if t in ds.tasks]
    return preset if len(preset) >= 2 else ds.task_names[:2]


def chosen_tasks(ds: Dataset) -> list[str]:
    saved = st.session_state.get("tasks")
    if saved is None:
        return default_tasks(ds)
    return [t for t in saved if t in ds.tasks]


def source_key(ds: Dataset) -> str:
    """A short key naming the dataset: the built-in's name, or the uploaded file's hash."""
    return ds.source.get("sha256", "")[:12] or ds.source.get("name", ds.name)


def set_tasks(tasks: list[str]) -> None:
    st.session_state["tasks"] = list(tasks)


def picker_key(key: str, source: str) -> str:
    """The session-state key of ``task_picker``'s widget ``key`` for the dataset named ``source``
    (``source_key``); popping it makes the picker start again from the shared choice."""
    return f"{key}__{source}"


def task_picker(ds: Dataset, key: str, label: str = "Tasks", help: str | None = None,
                max_selections: int | None = None) -> list[str]:
    """A multiselect of the dataset's tasks that starts from, and updates, the shared choice.

    Widget values vanish from session state when their page is left, so the
    choice is also kept under the plain key ``tasks`` that every page reads.
    """
    wkey = picker_key(key, source_key(ds))  # a new dataset gets a fresh widget, never stale options
    if wkey not in st.session_state:
        st.session_state[wkey] = chosen_tasks(ds)[:max_selections] if max_selections else chosen_tasks(ds)
    picked = st.multiselect(label, ds.task_names, key=wkey, help=help, max_selections=max_selections,
                            on_change=lambda: set_tasks(st.session_state[wkey]),
                            placeholder="Choose tasks")
    return picked


# An absolute server path (two or more parts): the browser sees only its last part.
_SERVER_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"`()<>,;:/]+/)+([^\s'\"`()<>,;:/]*)")


def for_browser(message: str) -> str:
    """``message`` without the server's absolute paths (the full text goes to the server log)."""
    shown = _SERVER_PATH.sub(lambda m: m.group(1) or "(a server folder)", message)
    if shown != message:
        log.warning("shown without server paths: %s", message)
    return shown


@contextlib.contextmanager
def friendly_errors(doing: str = ""):
    """Show a user error as an error box, and a bug as a short message: never a traceback."""
    try:
        yield
    except ExplorerError as e:
        st.error(for_browser(str(e)), icon=":material/error:")
    except Exception as e:  # noqa: BLE001 - st.stop/st.rerun are BaseException and pass through
        log.exception("unexpected error while %s", doing or "running a page")
        where = f" while {doing}" if doing else ""
        st.error(f"Something went wrong{where}: {type(e).__name__}: {for_browser(str(e))}. "
                 "This is a bug, not your input; the details are in the server log. "
                 "Try again, or choose other settings.", icon=":material/bug_report:")


def job(name: str) -> Job | None:
    return st.session_state.get(f"job_{name}")


def start_job(name: str, job_: Job) -> Job:
    old = job(name)
    if old is not None and old.running:
        old.cancel()
    st.session_state[f"job_{name}"] = job_.start()
    return job_


def clear_job(name: str) -> None:
    st.session_state.pop(f"job_{name}", None)


def progress_text(j: Job, what: str) -> str:
    eta = j.eta
    left = ("almost done" if j.fraction >= 0.999 else "estimating the time left…" if eta is None
            else f"about {format_seconds(eta)} left")
    return f"{what}: {j.fraction:.0%} · {format_seconds(j.elapsed)} elapsed · {left}"


def experts_picker(container, archs: list[str], key: str) -> int:
    """MMoE's number of experts: a slider when mmoe is among ``archs``, else the default."""
    from models.architectures.mmoe import EXPERTS, MAX_EXPERTS
    if "mmoe" not in archs:
        return EXPERTS
    return container.slider("MMoE experts", 1, MAX_EXPERTS, EXPERTS, key=key,
                            help="Shared expert encoders that each task's gate mixes (Ma et al. 2018).")


def encoder_picker(container, ds: Dataset, key: str) -> str:
    """The text encoder the models see ``ds`` through (a selectbox in ``container``; text data only)."""
    if ds.modality != "text":
        return DEFAULT_ENCODER
    return container.selectbox("Text encoder", list(TEXT_ENCODERS), key=key,
                               format_func=lambda e: {"bow": "bag of words (learned)",
                                                      "minilm": "MiniLM sentence embeddings (frozen)"}.get(e, e),
                               help="; ".join(f"{k}: {v}" for k, v in TEXT_ENCODERS.items())
                                    + ". MiniLM's embeddings are computed once per dataset (a few minutes on a "
                                      "CPU), then read from the run store; its models have no word attributions.")


def encoded_work(ds: Dataset, encoder: str, work):
    """A job's work: ``work(dataset, progress)`` on ``ds`` as the models see it under ``encoder``.

    For MiniLM the embeddings come from the store's cache; the first time they are computed in the job,
    as the first quarter of its progress bar, so the page never blocks on them.
    """
    if encoder == DEFAULT_ENCODER:
        return lambda progress: work(ds, progress)

    def run(progress):
        share = 0.0 if cache_path(list(ds.inputs), encoder).is_file() else 0.25
        data = with_encoder(ds, encoder, progress=within(progress, 0.0, share, 1.0))
        return work(data, within(progress, share, 1.0 - share, 1.0))
    return run



class EncodedPlan:
    """A library plan (``plan.run(progress)``) on ``ds`` as the models see it under a frozen text encoder.

    Made and checked at once on the page's dataset, so a bad request is one error before any job starts;
    ``run`` (in the job) embeds first, then makes the plan again on the embedded data, which is tabular
    and gets that modality's defaults (the learning rate, say).
    """

    def __init__(self, ds: Dataset, encoder: str, make_plan):
        self.checked = make_plan(ds)
        self.ds, self.encoder, self.make_plan = ds, encoder, make_plan

    def run(self, progress=None):
        return encoded_work(self.ds, self.encoder, lambda data, p: self.make_plan(data).run(p))(progress)


def encoded_plan(ds: Dataset, encoder: str, make_plan):
    """``make_plan(ds)`` for the bag of words; an ``EncodedPlan`` for a frozen encoder."""
    return make_plan(ds) if encoder == DEFAULT_ENCODER else EncodedPlan(ds, encoder, make_plan)
