"""The dataset's license: it follows the depth model where we know the model's license, else the publisher says;
`other` needs a name and a link, as the Hub's card metadata wants."""

from __future__ import annotations

import dataclasses
import re

from builder.contract.errors import UsageError
from builder.contract.settings import ModelRecord

# Depth-Anything V2: Small is Apache-2.0; Base and Large are CC-BY-NC-4.0.
MODEL_LICENSES = {"depth-anything/depth-anything-v2-small-hf": "apache-2.0",
                  "depth-anything/depth-anything-v2-base-hf": "cc-by-nc-4.0",
                  "depth-anything/depth-anything-v2-large-hf": "cc-by-nc-4.0"}
_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_URL = re.compile(r"^https?://\S+$")
_REPO_FILE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]*$")


def license_for_model(model: ModelRecord | None) -> str | None:
    """The dataset's license follows the depth model's; None when we do not know it."""
    if model is None:
        return None
    return MODEL_LICENSES.get(model.id.lower())


@dataclasses.dataclass(frozen=True)
class License:
    """The card's license. For `other` the Hub wants `license_name` (an id) and `license_link` (a URL, or a
    file in the repo such as LICENSE)."""

    id: str
    name: str | None = None
    link: str | None = None

    def yaml(self) -> dict:
        return {"license": self.id, **({"license_name": self.name, "license_link": self.link}
                                       if self.id == "other" else {})}


def resolve_license(model: ModelRecord | None, given: str | None) -> str:
    """The license follows the depth model (Apache-2.0 for V2-Small, CC-BY-NC-4.0 for Base/Large); when we do not
    know it (another model, or no depth) the user must say, since it also depends on their inputs."""
    known = license_for_model(model)
    if given is not None and not _LICENSE.match(given):
        raise UsageError([f"--license {given!r}: use a Hub license id such as apache-2.0, cc-by-nc-4.0, other"])
    if known and given and given != known:
        raise UsageError([f"--license {given}: the depth model {model.id} is {known}, and the "
                          f"dataset's depth maps follow it; drop --license or pass --license {known}"])
    if known or given:
        return known or given
    what = (f"the depth model {model.id!r} is not one whose license we know"
            if model else "the dataset was generated with --no-depth")
    raise UsageError([f"cannot tell the dataset's license: {what}, and it also depends on your inputs; "
                      "pass --license ID (a Hub license id, e.g. apache-2.0, cc-by-4.0, other)"])


def license_terms(license_id: str, name: str | None, link: str | None, repo_id: str) -> License:
    """`other` needs a license_name (default: the repo's name + "-license") and a license_link (a URL or a file
    in the repo such as LICENSE), which only the publisher can give; other ids take neither."""
    if license_id != "other":
        if name or link:
            raise UsageError([f"--license-name/--license-link go with --license other only; this dataset's "
                              f"license is {license_id}"])
        return License(license_id)
    name = name or f"{repo_id.split('/')[-1].lower()}-license"
    problems = []
    if not _LICENSE.match(name):
        problems.append(f"--license-name {name!r}: use an id of lowercase letters, digits, '.', '+' and '-' "
                        "(e.g. my-license-1.0)")
    if not link:
        problems.append("--license other needs --license-link: a URL of the license text, or the name of a file "
                        "in the dataset repo (e.g. LICENSE, uploaded by you)")
    elif not (_URL.match(link) or _REPO_FILE.match(link)):
        problems.append(f"--license-link {link!r}: give an https:// URL or a file name in the repo such as LICENSE")
    if problems:
        raise UsageError(problems)
    return License("other", name, link)
