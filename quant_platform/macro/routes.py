"""Where a report's files live on a vendor's site: a URL template on the vendor's real host, documented where.

Never import Dagster or pandas here: report folders' routes.py build on it, and the vendor simulator reads those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VendorHost:
    """A vendor's real host, and the Settings attribute (QP_*_BASE_URL, platform/settings.py) that repoints it."""

    real_url: str
    setting: str


EIA_IR = VendorHost("https://ir.eia.gov", "eia_ir_base_url")  # the WPSR's release files
EIA_WWW = VendorHost("https://www.eia.gov", "eia_base_url")  # dnav series pages and files
EIA_API = VendorHost("https://api.eia.gov", "eia_api_base_url")  # API v2 (needs QP_EIA_API_KEY)
CFTC_WWW = VendorHost("https://www.cftc.gov", "cftc_base_url")  # COT weekly files and history zips


@dataclass(frozen=True)
class Route:
    """One download URL of a report: a path template on a vendor host ({placeholders} filled per request), the lake
    dataset its files are archived under (raw/<vendor>/<dataset>/<partition>/), and where the vendor documents it."""

    host: VendorHost
    path: str
    dataset: str
    ext: str  # of the archived file
    documented_at: str

    def path_for(self, **values: Any) -> str:
        return self.path.format(**values)

    def url(self, settings: Any, **values: Any) -> str:
        """The URL on the configured host (the real one unless QP_*_BASE_URL points elsewhere, e.g. the simulator)."""
        return getattr(settings, self.host.setting) + self.path_for(**values)

    @property
    def vendor_url(self) -> str:
        """The template on the real host, as the catalog shows it."""
        return self.host.real_url + self.path
